//! The one replica set member a run reads from.
//!
//! A driver picks a server per operation, so with `readPreference=secondary`
//! one run could read the newest oplog entry, the collections and the oplog
//! from different secondaries with different lag, and store a short slice
//! or a dump whose end point is newer than its data. Instead a run resolves
//! the read preference once: it asks every member `hello` (its role, tags and
//! the last oplog entry it applied, `lastWrite.opTime`), keeps the eligible
//! ones, and connects directly to one of them that has applied through the
//! point the run needs (a checkpoint, a range's end). When none has, it waits
//! up to the lag bound, then fails naming the members and how far behind
//! they are. `hello` needs no privilege, so a `backup`-role user can do this.

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mongodb::bson::{doc, Document};
use mongodb::options::{ClientOptions, ReadPreference, SelectionCriteria, ServerAddress};
use mongodb::Client;

use crate::record::Ts;
use crate::{info, warn};

/// What a run needs of the member it reads from.
#[derive(Clone, Debug, Default)]
pub struct Need {
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
struct Seen {
    host: String,
    primary: bool,
    secondary: bool,
    applied: Option<Ts>,
    tags: Document,
}

impl Seen {
    fn role(&self) -> &'static str {
        match (self.primary, self.secondary) {
            (true, _) => "primary",
            (_, true) => "secondary",
            _ => "member",
        }
    }

    fn has_applied(&self, need: &Need) -> bool {
        need.applied_through.as_ref().is_none_or(|(ts, _)| self.applied.is_some_and(|applied| applied >= *ts))
    }
}

/// A member and a direct client to it.
struct Member {
    seen: Seen,
    client: Client,
}

impl std::ops::Deref for Member {
    type Target = Seen;

    fn deref(&self) -> &Seen {
        &self.seen
    }
}

impl Borrow<Seen> for Member {
    fn borrow(&self) -> &Seen {
        &self.seen
    }
}

/// Connects to the member the run reads from; returns its client and, on a
/// replica set, its `host:port`. A standalone or a mongos is used as is.
pub(crate) async fn pin(mut options: ClientOptions, need: Need, max_lag: Duration) -> Result<(Client, Option<String>)> {
    if need.writable {
        // A restore reads what it wrote: everything goes to the primary.
        options.selection_criteria = None;
    }
    let criteria = options.selection_criteria.clone();
    let direct = options.direct_connection == Some(true);
    let seed = Client::with_options(options.clone()).context("creating the MongoDB client")?;
    let hello = match ask_hello(&seed, criteria.clone()).await {
        Ok(reply) => reply,
        Err(err) => {
            seed.shutdown().await;
            let hosts = options.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(",");
            return Err(err).context(match &criteria {
                Some(SelectionCriteria::ReadPreference(rp)) if !direct => {
                    format!("connecting to {hosts}: no member for read preference {}", mode_name(rp))
                }
                _ => format!("connecting to {hosts}"),
            });
        }
    };
    let set_member = hello.get_str("setName").is_ok() && hello.get_str("msg") != Ok("isdbgrid");
    if need.writable && !direct {
        // Writes go to the primary; the driver follows it through a failover.
        return Ok((seed, None));
    }
    if !set_member {
        if need.applied_through.is_some() {
            seed.shutdown().await;
            bail!("the server is not a replica set member: incremental backups need its oplog");
        }
        return Ok((seed, None));
    }
    let mut members = if direct {
        // The user named this member: read preference does not choose among one.
        let host = hello
            .get_str("me")
            .map(str::to_string)
            .unwrap_or_else(|_| options.hosts.first().map(ToString::to_string).unwrap_or_default());
        vec![describe(host, seed, &hello)]
    } else {
        let mut hosts: Vec<String> = Vec::new();
        for list in ["hosts", "passives"] {
            if let Ok(names) = hello.get_array(list) {
                hosts.extend(names.iter().filter_map(|h| h.as_str().map(str::to_string)));
            }
        }
        seed.shutdown().await;
        connect_members(&options, &hosts).await
    };
    let read_preference = match (&criteria, direct) {
        (_, true) => ReadPreference::PrimaryPreferred { options: None },
        (Some(SelectionCriteria::ReadPreference(rp)), false) => rp.clone(),
        _ => ReadPreference::Primary,
    };

    let deadline = Instant::now() + max_lag;
    let mut announced = false;
    loop {
        let eligible = eligible(&members, &read_preference);
        if eligible.is_empty() {
            let seen = members.iter().map(|m| format!("{} ({})", m.host, m.role())).collect::<Vec<_>>().join(", ");
            shutdown_all(members).await;
            bail!("no reachable member matches read preference {}; members: {seen}", mode_name(&read_preference));
        }
        if let Some(index) = choose(&members, &eligible, &need) {
            let chosen = members.swap_remove(index);
            shutdown_all(members).await;
            info!("reading from {} ({}), applied through {}", chosen.host, chosen.role(), show(chosen.applied));
            return Ok((chosen.client, Some(chosen.seen.host)));
        }
        let Some((point, what)) = need.applied_through.clone() else {
            shutdown_all(members).await;
            bail!("no eligible member could be chosen");
        };
        let behind = eligible.iter().map(|&i| behind(&members[i], point)).collect::<Vec<_>>().join("; ");
        if Instant::now() >= deadline {
            shutdown_all(members).await;
            let mode =
                if direct { String::new() } else { format!(" (read preference {})", mode_name(&read_preference)) };
            return Err(too_far_behind(&format!("{behind}{mode}"), &what, point, max_lag));
        }
        if !announced {
            warn!("waiting up to {} s for a member to apply through {what} {point}: {behind}", max_lag.as_secs());
            announced = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        for member in &mut members {
            if let Ok(reply) = ask_hello(&member.client, None).await {
                refresh(&mut member.seen, &reply);
            }
        }
    }
}

/// Waits until the member behind `client` has applied through `point`, up to `max_lag`.
pub(crate) async fn wait_applied(client: &Client, host: &str, point: Ts, what: &str, max_lag: Duration) -> Result<()> {
    let deadline = Instant::now() + max_lag;
    let mut announced = false;
    loop {
        let mut member = Seen { host: host.to_string(), ..Seen::default() };
        refresh(&mut member, &ask_hello(client, None).await?);
        if member.applied.is_some_and(|applied| applied >= point) {
            return Ok(());
        }
        let behind = behind(&member, point);
        if Instant::now() >= deadline {
            return Err(too_far_behind(&behind, what, point, max_lag));
        }
        if !announced {
            warn!("waiting up to {} s for {what} {point}: {behind}", max_lag.as_secs());
            announced = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How far a member is behind `point`, for messages.
fn behind(member: &Seen, point: Ts) -> String {
    let lag = member.applied.map_or(String::new(), |a| format!(", {} s behind", point.t.saturating_sub(a.t)));
    format!("{} ({}) has applied the oplog only through {}{lag}", member.host, member.role(), show(member.applied))
}

fn too_far_behind(behind: &str, what: &str, point: Ts, max_lag: Duration) -> anyhow::Error {
    anyhow::anyhow!(
        "{behind}: not yet through {what} {}; waited {} s for it \
         (raise --max-lag / max_lag_seconds, or read from another member)",
        crate::mongo::describe_ts(point),
        max_lag.as_secs()
    )
}

async fn ask_hello(client: &Client, criteria: Option<SelectionCriteria>) -> Result<Document> {
    let admin = client.database("admin");
    let command = admin.run_command(doc! {"hello": 1});
    match criteria {
        Some(criteria) => command.selection_criteria(criteria).await,
        None => command.await,
    }
    .context("asking `hello`")
}

/// Direct clients to every member that answers; the unreachable are left out.
async fn connect_members(options: &ClientOptions, hosts: &[String]) -> Vec<Member> {
    let probes = hosts.iter().map(|host| async move {
        let address = ServerAddress::parse(host).ok()?;
        let mut member_options = options.clone();
        member_options.hosts = vec![address];
        member_options.direct_connection = Some(true);
        // A direct client reads from a secondary only with a non-primary preference.
        member_options.selection_criteria =
            Some(SelectionCriteria::ReadPreference(ReadPreference::PrimaryPreferred { options: None }));
        let client = Client::with_options(member_options).ok()?;
        match ask_hello(&client, None).await {
            Ok(reply) => Some(describe(host.clone(), client, &reply)),
            Err(err) => {
                warn!("member {host} does not answer: {}", crate::cli::one_line(&err));
                client.shutdown().await;
                None
            }
        }
    });
    futures_util::future::join_all(probes).await.into_iter().flatten().collect()
}

fn describe(host: String, client: Client, hello: &Document) -> Member {
    let mut member = Member { seen: Seen { host, ..Seen::default() }, client };
    refresh(&mut member.seen, hello);
    member
}

fn refresh(seen: &mut Seen, hello: &Document) {
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

/// Indexes of the members the read preference allows, tags included.
fn eligible<M: Borrow<Seen>>(members: &[M], read_preference: &ReadPreference) -> Vec<usize> {
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
fn choose<M: Borrow<Seen>>(members: &[M], eligible: &[usize], need: &Need) -> Option<usize> {
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

async fn shutdown_all(members: Vec<Member>) {
    futures_util::future::join_all(members.into_iter().map(|m| async move { m.client.shutdown().await })).await;
}

fn mode_name(read_preference: &ReadPreference) -> &'static str {
    match read_preference {
        ReadPreference::Primary => "primary",
        ReadPreference::Secondary { .. } => "secondary",
        ReadPreference::PrimaryPreferred { .. } => "primaryPreferred",
        ReadPreference::SecondaryPreferred { .. } => "secondaryPreferred",
        ReadPreference::Nearest { .. } => "nearest",
        _ => "the given",
    }
}

fn show(ts: Option<Ts>) -> String {
    ts.map_or("nothing".into(), crate::mongo::describe_ts)
}

#[cfg(test)]
mod tests {
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
