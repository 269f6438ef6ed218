//! Choosing the member: what a run needs of it, what each member's `hello`
//! says, which members a read preference allows, and which of them to read.
//! Pure logic: `member.rs` asks the servers.

use std::borrow::Borrow;

use mongodb::bson::Document;
use mongodb::options::ReadPreference;

use crate::format::records::Ts;

/// What a run needs of the member it reads from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Need {
    /// The member must have applied the oplog through this point; the text
    /// names the point in messages ("the checkpoint", "the range's end").
    pub applied_through: Option<(Ts, String)>,
    /// Rather read from a member that has applied through this point, but
    /// take the member furthest ahead without waiting if none has: the run
    /// checks its oplog first, then waits ([`crate::mongo::Connection::wait_applied`]).
    pub ahead_of: Option<Ts>,
    /// Read from this member (`host:port`) if it is eligible and has applied
    /// through the points: the member that decided the range.
    pub prefer: Option<String>,
    /// The run writes (a restore): the driver keeps to the primary, so no
    /// member is pinned (unless the URI names one with directConnection).
    pub writable: bool,
}

/// One member as its own `hello` describes it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    pub(crate) host: String,
    pub(crate) primary: bool,
    pub(crate) secondary: bool,
    pub(crate) applied: Option<Ts>,
    pub(crate) tags: Document,
}

impl Seen {
    pub(crate) fn role(&self) -> &'static str {
        match (self.primary, self.secondary) {
            (true, _) => "primary",
            (_, true) => "secondary",
            _ => "member",
        }
    }

    pub(crate) fn has_applied(&self, need: &Need) -> bool {
        need.applied_through.as_ref().is_none_or(|(ts, _)| self.applied.is_some_and(|applied| applied >= *ts))
    }
}

/// Reads what a member's `hello` reply says of it: role, tags, last applied entry.
pub(crate) fn refresh(seen: &mut Seen, hello: &Document) {
    seen.primary = hello.get_bool("isWritablePrimary").unwrap_or(false);
    seen.secondary = hello.get_bool("secondary").unwrap_or(false);
    seen.tags = hello.get_document("tags").cloned().unwrap_or_default();
    seen.applied = hello
        .get_document("lastWrite")
        .and_then(|w| w.get_document("opTime"))
        .and_then(|o| o.get_timestamp("ts"))
        .ok()
        .map(Ts::from);
}

/// How far a member is behind `point`, for messages.
pub(crate) fn behind(member: &Seen, point: Ts) -> String {
    let lag = member.applied.map_or(String::new(), |a| format!(", {} s behind", point.t.saturating_sub(a.t)));
    format!("{} ({}) has applied the oplog only through {}{lag}", member.host, member.role(), show(member.applied))
}

/// Indexes of the members the read preference allows, tags included.
pub(crate) fn eligible<M: Borrow<Seen>>(members: &[M], read_preference: &ReadPreference) -> Vec<usize> {
    let indexes = |keep: &dyn Fn(&Seen) -> bool| -> Vec<usize> {
        members.iter().enumerate().filter(|(_, m)| keep((*m).borrow())).map(|(i, _)| i).collect()
    };
    let primaries = indexes(&|m| m.primary);
    let (secondaries, options) = match read_preference {
        ReadPreference::Primary => return primaries,
        ReadPreference::Secondary { options }
        | ReadPreference::PrimaryPreferred { options }
        | ReadPreference::SecondaryPreferred { options } => (indexes(&|m| m.secondary), options),
        ReadPreference::Nearest { options } => (indexes(&|m| m.primary || m.secondary), options),
        _ => return primaries,
    };
    // maxStalenessSeconds, measured against the primary's last write.
    let newest = primaries.first().and_then(|&i| members[i].borrow().applied);
    let stale = |i: &usize| match (options.as_ref().and_then(|o| o.max_staleness), newest, members[*i].borrow().applied)
    {
        (Some(bound), Some(newest), Some(applied)) => u64::from(newest.t.saturating_sub(applied.t)) > bound.as_secs(),
        _ => false,
    };
    let secondaries: Vec<usize> =
        secondaries.into_iter().filter(|i| !members[*i].borrow().secondary || !stale(i)).collect();
    let tag_sets = options.as_ref().and_then(|o| o.tag_sets.clone()).unwrap_or_default();
    let tagged = |candidates: Vec<usize>| -> Vec<usize> {
        if tag_sets.is_empty() {
            return candidates;
        }
        tag_sets
            .iter()
            .map(|set| {
                candidates
                    .iter()
                    .copied()
                    .filter(|&i| set.iter().all(|(k, v)| members[i].borrow().tags.get_str(k) == Ok(v.as_str())))
                    .collect::<Vec<_>>()
            })
            .find(|matching| !matching.is_empty())
            .unwrap_or_default()
    };
    match read_preference {
        ReadPreference::PrimaryPreferred { .. } if !primaries.is_empty() => primaries,
        ReadPreference::PrimaryPreferred { .. } | ReadPreference::Secondary { .. } => tagged(secondaries),
        ReadPreference::SecondaryPreferred { .. } => {
            let secondaries = tagged(secondaries);
            if secondaries.is_empty() {
                primaries
            } else {
                secondaries
            }
        }
        _ => tagged(secondaries),
    }
}

/// The member to read from among the eligible that have applied what the
/// run needs: the preferred one, else the one furthest ahead.
pub(crate) fn choose<M: Borrow<Seen>>(members: &[M], eligible: &[usize], need: &Need) -> Option<usize> {
    let seen = |i: usize| -> &Seen { members[i].borrow() };
    let ready: Vec<usize> = eligible.iter().copied().filter(|&i| seen(i).has_applied(need)).collect();
    let ahead = |i: usize| need.ahead_of.is_none_or(|point| seen(i).applied.is_some_and(|a| a >= point));
    if let Some(prefer) = &need.prefer {
        if let Some(&i) = ready.iter().find(|&&i| &seen(i).host == prefer && ahead(i)) {
            return Some(i);
        }
    }
    ready.into_iter().max_by_key(|&i| seen(i).applied)
}

pub(crate) fn mode_name(read_preference: &ReadPreference) -> &'static str {
    match read_preference {
        ReadPreference::Primary => "primary",
        ReadPreference::Secondary { .. } => "secondary",
        ReadPreference::PrimaryPreferred { .. } => "primaryPreferred",
        ReadPreference::SecondaryPreferred { .. } => "secondaryPreferred",
        ReadPreference::Nearest { .. } => "nearest",
        _ => "the given",
    }
}

pub(crate) fn show(ts: Option<Ts>) -> String {
    ts.map_or("nothing".into(), crate::mongo::describe_ts)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mongodb::bson::doc;

    use super::*;
    use mongodb::options::ReadPreferenceOptions;

    fn seen(host: &str, primary: bool, applied: u32, tag: &str) -> Seen {
        Seen {
            host: host.into(),
            primary,
            secondary: !primary,
            applied: Some(Ts::new(applied, 1)),
            tags: doc! {"name": tag},
        }
    }

    fn set() -> Vec<Seen> {
        vec![seen("p:1", true, 100, "p"), seen("a:1", false, 90, "a"), seen("b:1", false, 80, "b")]
    }

    #[test]
    fn modes_pick_their_members() {
        let members = set();
        assert_eq!(eligible(&members, &ReadPreference::Primary), vec![0]);
        assert_eq!(eligible(&members, &ReadPreference::Secondary { options: None }), vec![1, 2]);
        assert_eq!(eligible(&members, &ReadPreference::PrimaryPreferred { options: None }), vec![0]);
        assert_eq!(eligible(&members, &ReadPreference::SecondaryPreferred { options: None }), vec![1, 2]);
        assert_eq!(eligible(&members, &ReadPreference::Nearest { options: None }), vec![0, 1, 2]);
        let only_primary = vec![seen("p:1", true, 100, "p")];
        assert_eq!(eligible(&only_primary, &ReadPreference::SecondaryPreferred { options: None }), vec![0]);
        assert!(eligible(&only_primary, &ReadPreference::Secondary { options: None }).is_empty());
    }

    #[test]
    fn max_staleness_leaves_out_secondaries_too_far_behind_the_primary() {
        let members = set();
        let options = ReadPreferenceOptions::builder().max_staleness(Duration::from_secs(15)).build();
        assert_eq!(eligible(&members, &ReadPreference::Secondary { options: Some(options) }), vec![1]);
    }

    #[test]
    fn tag_sets_are_tried_in_order() {
        let members = set();
        let tags = |sets: &[&str]| {
            let tag_sets: Vec<_> =
                sets.iter().map(|t| mongodb::options::TagSet::from([("name".to_string(), t.to_string())])).collect();
            let options = ReadPreferenceOptions::builder().tag_sets(tag_sets).build();
            ReadPreference::Secondary { options: Some(options) }
        };
        assert_eq!(eligible(&members, &tags(&["b"])), vec![2]);
        assert_eq!(eligible(&members, &tags(&["x", "a"])), vec![1]);
        assert!(eligible(&members, &tags(&["x"])).is_empty());
    }

    #[test]
    fn the_member_furthest_ahead_that_has_applied_the_need_is_chosen() {
        let members = set();
        let need = |t: u32, prefer: Option<&str>| Need {
            applied_through: Some((Ts::new(t, 1), "the checkpoint".into())),
            prefer: prefer.map(str::to_string),
            ..Need::default()
        };
        assert_eq!(choose(&members, &[1, 2], &Need::default()), Some(1));
        assert_eq!(choose(&members, &[1, 2], &need(85, None)), Some(1));
        assert_eq!(choose(&members, &[1, 2], &need(95, None)), None, "both secondaries are behind");
        assert_eq!(choose(&members, &[1, 2], &need(70, Some("b:1"))), Some(2), "the range's member first");
        assert_eq!(choose(&members, &[1, 2], &need(85, Some("b:1"))), Some(1), "unless it is behind");
        let ahead = Need { ahead_of: Some(Ts::new(85, 1)), prefer: Some("b:1".into()), ..Need::default() };
        assert_eq!(choose(&members, &[1, 2], &ahead), Some(1), "a member past the range's end first");
        let none_ahead = Need { ahead_of: Some(Ts::new(95, 1)), ..Need::default() };
        assert_eq!(choose(&members, &[1, 2], &none_ahead), Some(1), "else the furthest ahead, without waiting");
    }
}
