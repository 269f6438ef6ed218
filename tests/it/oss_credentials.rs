//! Signatures and credentials, end to end: the real mb-oss-put/mb-oss-get
//! against the suite's OSS server checking V4 (region cn-hangzhou), with keys
//! from every source of the chain, temporary keys from loopback stand-ins of
//! STS, the ECS metadata service and a credentials URI, and keys that expire
//! in the middle of an upload. No secret or token ever shows in the output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use crate::support::cred_servers::CredServer;
use crate::support::oss_server::oss_auth::Key;
use crate::support::oss_server::{self, OssServer};
use crate::support::{assert_fails_with, assert_ok, run_with_input, stage, stderr_of, temp_dir};

pub(crate) const BUCKET: &str = "backups";

/// Every variable the credential chain reads, cleared so the developer's
/// or CI's environment cannot leak into a test.
pub(crate) const CHAIN_VARS: &[&str] = &[
    "OSS_ACCESS_KEY_ID",
    "OSS_ACCESS_KEY_SECRET",
    "OSS_SESSION_TOKEN",
    "OSS_REGION",
    "OSS_ENDPOINT",
    "OSS_BUCKET",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABA_CLOUD_ROLE_ARN",
    "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
    "ALIBABA_CLOUD_STS_ENDPOINT",
    "ALIBABA_CLOUD_CREDENTIALS_URI",
    "ALIBABA_CLOUD_CREDENTIALS_FILE",
    "ALIBABA_CLOUD_CONFIG_FILE",
    "ALIBABA_CLOUD_PROFILE",
    "ALIBABA_CLOUD_ECS_METADATA",
    "ALIBABA_CLOUD_ECS_METADATA_SERVICE_ENDPOINT",
    "MB_TEST_ONLY_ECS_METADATA_ENDPOINT",
];

pub(crate) fn v4_only_server() -> OssServer {
    let server = oss_server::start();
    server.create_bucket(BUCKET);
    server.set_v4_only(true);
    server
}

/// A stage with an empty credential environment, HOME in `home`, the ECS
/// metadata service off, pointed at the server's bucket in cn-hangzhou.
pub(crate) fn bare(server: &OssServer, name: &str, home: &Path) -> Command {
    let mut c = stage(name);
    for var in CHAIN_VARS {
        c.env_remove(var);
    }
    c.env("HOME", home).env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true").env("OSS_REGION", "cn-hangzhou").args([
        "--endpoint",
        &server.endpoint(),
        "--bucket",
        BUCKET,
    ]);
    c
}

#[track_caller]
pub(crate) fn no_secrets(output: &Output, secrets: &[String]) {
    let all = format!("{}{}", String::from_utf8_lossy(&output.stdout), stderr_of(output));
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!all.contains(secret.as_str()), "a secret or token leaked: {all}");
    }
}

fn key_secrets(keys: &[Key]) -> Vec<String> {
    keys.iter().flat_map(|k| [k.secret.clone(), k.token.clone().unwrap_or_default()]).collect()
}

/// Puts `data` under `key` with `-v`, reads it back, and returns put's stderr.
#[track_caller]
fn round_trip(server: &OssServer, home: &Path, setup: &dyn Fn(&mut Command), key: &str, data: &[u8]) -> String {
    let mut put = bare(server, "mb-oss-put", home);
    setup(&mut put);
    put.args(["-v", "--key", key, "--part-size", "100KiB"]);
    let output = run_with_input(&mut put, data);
    assert_ok(&output);
    let mut get = bare(server, "mb-oss-get", home);
    setup(&mut get);
    get.args(["--key", key]);
    let fetched = run_with_input(&mut get, b"");
    assert_ok(&fetched);
    assert!(fetched.stdout == data, "{key}: the object read back differs");
    stderr_of(&output)
}

#[test]
fn alibaba_cloud_env_keys_and_sts_tokens_reach_a_v4_only_server() {
    let server = v4_only_server();
    let home = temp_dir();
    let (id, secret) = (server.access_key_id(), server.secret());
    let data = crate::support::pseudo_random(250_000, 1);
    let env = |c: &mut Command| {
        c.env("ALIBABA_CLOUD_ACCESS_KEY_ID", &id).env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret);
    };
    let log = round_trip(&server, home.path(), &env, "env/one", &data);
    assert!(log.contains("credentials from env ALIBABA_CLOUD_ACCESS_KEY_ID"), "{log}");
    assert!(log.contains("signature V4 (region cn-hangzhou)"), "{log}");
    assert!(!log.contains(&secret), "{log}");

    // An STS key works only with its token, and only until it expires.
    let sts = Key {
        id: "STS.envkey".into(),
        secret: "sts-secret-Do-Not-Print".into(),
        token: Some("CAIS-env-token-Do-Not-Print".into()),
        expires: Some(SystemTime::now() + Duration::from_secs(3600)),
    };
    server.key_ring().add(sts.clone());
    let with = |token: &str| {
        let (id, secret, token) = (sts.id.clone(), sts.secret.clone(), token.to_string());
        move |c: &mut Command| {
            c.env("ALIBABA_CLOUD_ACCESS_KEY_ID", &id)
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", &secret)
                .env("ALIBABA_CLOUD_SECURITY_TOKEN", &token);
        }
    };
    round_trip(&server, home.path(), &with(sts.token.as_deref().unwrap()), "env/sts", b"sts data");
    let mut get = bare(&server, "mb-oss-get", home.path());
    with("CAIS-forged-token")(&mut get);
    get.args(["--key", "env/sts"]);
    let output = run_with_input(&mut get, b"");
    assert_fails_with(&output, 1, "InvalidSecurityToken");
    no_secrets(&output, &key_secrets(std::slice::from_ref(&sts)));

    let expired =
        Key { id: "STS.old".into(), expires: Some(SystemTime::now() - Duration::from_secs(1)), ..sts.clone() };
    server.key_ring().add(expired.clone());
    let mut get = bare(&server, "mb-oss-get", home.path());
    get.env("OSS_ACCESS_KEY_ID", &expired.id)
        .env("OSS_ACCESS_KEY_SECRET", &expired.secret)
        .env("OSS_SESSION_TOKEN", expired.token.as_deref().unwrap())
        .args(["--key", "env/sts"]);
    assert_fails_with(&run_with_input(&mut get, b""), 1, "expired");
}

#[test]
fn rrsa_oidc_credentials_uri_and_ecs_role_give_temporary_keys() {
    let server = v4_only_server();
    let home = temp_dir();
    let creds = CredServer::start(server.key_ring(), Duration::from_secs(3600), "oidc-jwt-abc");
    let token_file = home.path().join("oidc-token");
    std::fs::write(&token_file, "oidc-jwt-abc\n").unwrap();

    let oidc = |c: &mut Command| {
        c.env("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::123:role/mb")
            .env("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::123:oidc-provider/ack")
            .env("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_file)
            .env("ALIBABA_CLOUD_STS_ENDPOINT", creds.url());
    };
    let log = round_trip(&server, home.path(), &oidc, "role/oidc", b"through RRSA");
    assert!(log.contains("credentials from RRSA/OIDC"), "{log}");

    let uri = format!("{}/credentials", creds.url());
    let by_uri = |c: &mut Command| {
        c.env("ALIBABA_CLOUD_CREDENTIALS_URI", &uri);
    };
    let log = round_trip(&server, home.path(), &by_uri, "role/uri", b"through a credentials URI");
    assert!(log.contains("credentials from ALIBABA_CLOUD_CREDENTIALS_URI"), "{log}");

    let ecs = |c: &mut Command| {
        c.env_remove("ALIBABA_CLOUD_ECS_METADATA_DISABLED").env("MB_TEST_ONLY_ECS_METADATA_ENDPOINT", creds.url());
    };
    let log = round_trip(&server, home.path(), &ecs, "role/ecs", b"through the ECS RAM role");
    assert!(log.contains("credentials from ECS RAM role"), "{log}");
    // Hardened mode: a token first, then the role and its keys with that token.
    let requests = creds.requests();
    assert!(requests.iter().any(|r| r.starts_with("PUT /latest/api/token")), "{requests:?}");
    let role_path =
        format!("GET /latest/meta-data/ram/security-credentials/{} token", crate::support::cred_servers::ROLE);
    assert!(requests.iter().any(|r| r == &role_path), "{requests:?}");

    assert!(creds.issued().len() >= 3);
    let all_keys = key_secrets(&creds.issued());
    for key in ["role/oidc", "role/uri", "role/ecs"] {
        let mut get = bare(&server, "mb-oss-get", home.path());
        ecs(&mut get);
        get.args(["-v", "--key", key]);
        let output = run_with_input(&mut get, b"");
        assert_ok(&output);
        no_secrets(&output, &all_keys);
    }
}

#[test]
fn profile_files_supply_keys() {
    let server = v4_only_server();
    let home = temp_dir();
    let (id, secret) = (server.access_key_id(), server.secret());
    std::fs::create_dir_all(home.path().join(".alibabacloud")).unwrap();
    std::fs::write(
        home.path().join(".alibabacloud/credentials"),
        format!("[default]\nenable = true\ntype = access_key\naccess_key_id = {id}\naccess_key_secret = {secret}\n"),
    )
    .unwrap();
    let log = round_trip(&server, home.path(), &|_| {}, "files/ini", b"from the credentials file");
    assert!(log.contains("credentials from ~/.alibabacloud/credentials"), "{log}");
    std::fs::remove_file(home.path().join(".alibabacloud/credentials")).unwrap();

    std::fs::create_dir_all(home.path().join(".aliyun")).unwrap();
    std::fs::write(
        home.path().join(".aliyun/config.json"),
        format!(
            r#"{{"current":"default","profiles":[{{"name":"default","mode":"AK","access_key_id":"{id}","access_key_secret":"{secret}","region_id":"cn-hangzhou"}}]}}"#
        ),
    )
    .unwrap();
    let log = round_trip(&server, home.path(), &|_| {}, "files/json", b"from the CLI config");
    assert!(log.contains("credentials from ~/.aliyun/config.json"), "{log}");
    assert!(!log.contains(&secret));
}

/// Keys that live 2 s, an upload that takes longer (stdin arrives slowly):
/// parts signed after the first key expired must use fresh keys.
#[test]
fn temporary_keys_that_expire_mid_upload_are_refreshed() {
    let server = v4_only_server();
    let home = temp_dir();
    let creds = CredServer::start(server.key_ring(), Duration::from_secs(2), "unused");
    let mut put = bare(&server, "mb-oss-put", home.path());
    put.env_remove("ALIBABA_CLOUD_ECS_METADATA_DISABLED")
        .env("MB_TEST_ONLY_ECS_METADATA_ENDPOINT", creds.url())
        .args(["--key", "slow/upload", "--part-size", "100KiB", "--parallel", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let data = crate::support::pseudo_random(700_000, 7);
    let mut child = put.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for chunk in data.chunks(250_000) {
        stdin.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_ok(&output);
    no_secrets(&output, &key_secrets(&creds.issued()));
    assert_eq!(server.object(BUCKET, "slow/upload").expect("stored").data.as_slice(), &data[..]);
    assert!(creds.issued().len() >= 3, "keys were refreshed: {}", creds.issued().len());
    assert!(server.requests().iter().filter(|r| r.contains("partNumber=")).count() >= 7);
}

#[test]
fn region_and_signature_version_are_checked() {
    let server = oss_server::start();
    server.create_bucket(BUCKET);
    let home = temp_dir();
    let keys = |c: &mut Command| {
        c.env("OSS_ACCESS_KEY_ID", oss_server::ACCESS_KEY_ID)
            .env("OSS_ACCESS_KEY_SECRET", oss_server::ACCESS_KEY_SECRET);
    };
    // No region for a non-standard endpoint: a usage error that says how to give one.
    let mut c = stage("mb-oss-put");
    for var in CHAIN_VARS {
        c.env_remove(var);
    }
    keys(&mut c);
    c.args(["--endpoint", &server.endpoint(), "--bucket", BUCKET, "--key", "r/x"]);
    let output = run_with_input(&mut c, b"x");
    assert_fails_with(&output, 2, "--region");
    assert!(stderr_of(&output).contains("OSS_REGION"));
    assert_eq!(stderr_of(&output).trim().lines().count(), 1);

    // A wrong region is refused as OSS does.
    let mut c = bare(&server, "mb-oss-put", home.path());
    keys(&mut c);
    c.args(["--region", "cn-beijing", "--key", "r/x"]);
    let output = run_with_input(&mut c, b"x");
    assert_fails_with(&output, 1, "Invalid signing region");
    assert!(stderr_of(&output).contains("signed for region cn-beijing"), "{}", stderr_of(&output));

    // V1 when asked for, until the bucket is V4-only.
    let mut c = bare(&server, "mb-oss-put", home.path());
    keys(&mut c);
    c.args(["-v", "--signature-version", "1", "--key", "r/v1"]);
    let output = run_with_input(&mut c, b"signed V1");
    assert_ok(&output);
    assert!(stderr_of(&output).contains("signature V1"), "{}", stderr_of(&output));
    assert_eq!(server.object(BUCKET, "r/v1").unwrap().data.as_slice(), b"signed V1");
    let config = home.path().join("v1.conf");
    std::fs::write(&config, "signature_version = 1\n").unwrap();
    let mut c = bare(&server, "mb-oss-get", home.path());
    keys(&mut c);
    c.args(["-v", "--config", config.to_str().unwrap(), "--key", "r/v1"]);
    let output = run_with_input(&mut c, b"");
    assert_eq!(output.stdout, b"signed V1");
    assert!(stderr_of(&output).contains("signature V1"), "{}", stderr_of(&output));
    server.set_v4_only(true);
    let mut c = bare(&server, "mb-oss-get", home.path());
    keys(&mut c);
    c.args(["--signature-version", "1", "--key", "r/v1"]);
    let output = run_with_input(&mut c, b"");
    assert_fails_with(&output, 1, "AccessDenied");
    assert!(stderr_of(&output).contains("drop --signature-version 1"), "{}", stderr_of(&output));
    let mut c = bare(&server, "mb-oss-get", home.path());
    keys(&mut c);
    c.args(["--key", "r/v1"]);
    assert_eq!(run_with_input(&mut c, b"").stdout, b"signed V1");
}

#[test]
fn no_credentials_names_every_source_tried() {
    let server = v4_only_server();
    let home = temp_dir();
    let mut c = bare(&server, "mb-oss-put", home.path());
    c.args(["--key", "none/x"]);
    let output = run_with_input(&mut c, b"x");
    assert_fails_with(&output, 1, "no OSS credentials found; tried:");
    let text = stderr_of(&output);
    for source in
        ["OSS_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID", "~/.alibabacloud/credentials", "~/.aliyun/config.json"]
    {
        assert!(text.contains(source), "{source} not named: {text}");
    }
    assert_eq!(text.trim().lines().count(), 1, "{text}");
}
