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

use super::choice::{behind, choose, eligible, mode_name, refresh, show, Need, Seen};
use crate::format::records::Ts;
use crate::{info, warn};

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

async fn shutdown_all(members: Vec<Member>) {
    futures_util::future::join_all(members.into_iter().map(|m| async move { m.client.shutdown().await })).await;
}
