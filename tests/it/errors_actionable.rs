//! Errors that point the right way (issue 18, items 10, 15 and 16): failing
//! credential services never get their answer bodies printed, endpoints that
//! never answer fail within 30 s naming what did not answer, and the stages'
//! own messages say what happened (trailing data, escaped tar bytes, skipped
//! profiles) rather than a misleading neighbour.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::oss_credentials::{bare, no_secrets, v4_only_server, BUCKET, CHAIN_VARS};
use crate::support::cred_servers::{refused_host_port, Scripted, Silent, ROLE};
use crate::support::{assert_fails_with, assert_ok, fixture, run_with_input, stage, stderr_of, temp_dir};

/// What every failing service below puts in its answer body: none of it may
/// reach a line of output.
const LEAK: &str = "LEAKED-Secret-9f3";

fn secret_body(code: &str) -> String {
    format!(
        "{{\"Code\":\"{code}\",\"Message\":\"request refused\",\"AccessKeyId\":\"STS.leak\",\"AccessKeySecret\":\"{LEAK}-1\",\"SecurityToken\":\"{LEAK}-2\"}}"
    )
}

/// Sets a command's credential environment.
type Setup = dyn Fn(&mut Command);

/// mb-oss-get of one key with `setup`'s credential environment, with `-vv`
/// (retry and debug lines) or without.
fn get(setup: &Setup, verbose: bool) -> Output {
    let server = v4_only_server();
    let home = temp_dir();
    let mut c = bare(&server, "mb-oss-get", home.path());
    setup(&mut c);
    c.args(["--key", "k"]);
    if verbose {
        c.arg("-vv");
    }
    run_with_input(&mut c, b"")
}

#[track_caller]
fn fails_without_the_body(output: &Output, needles: &[&str]) {
    no_secrets(output, &[LEAK.to_string(), "STS.leak".to_string()]);
    let text = stderr_of(output);
    assert_fails_with(output, 1, "no OSS credentials");
    let last = text.lines().last().unwrap_or("");
    for needle in needles {
        assert!(last.contains(needle), "{needle:?} missing from the last line: {text}");
    }
}

#[test]
fn credential_services_error_bodies_are_never_printed() {
    let uri_403 = Scripted::start(|_, _| (403, secret_body("Forbidden")));
    let uri_500 = Scripted::start(|_, _| (500, secret_body("InternalError")));
    // ECS: the role name is given; its credentials are refused, or the service fails.
    let ecs_403 = Scripted::start(|_, path| match path {
        "/latest/meta-data/ram/security-credentials/" => (200, ROLE.to_string()),
        _ => (403, secret_body("Forbidden")),
    });
    let ecs_500 = Scripted::start(|_, _| (500, secret_body("InternalError")));
    let sts_400 = Scripted::start(|_, _| (400, secret_body("InvalidParameter.OIDCToken")));
    let home = temp_dir();
    let token_file = home.path().join("oidc-token");
    std::fs::write(&token_file, "jwt").unwrap();
    let uri = |s: &Scripted| {
        let url = format!("{}/credentials", s.url());
        move |c: &mut Command| {
            c.env("ALIBABA_CLOUD_CREDENTIALS_URI", &url);
        }
    };
    let ecs = |s: &Scripted| {
        let url = s.url();
        move |c: &mut Command| {
            c.env_remove("ALIBABA_CLOUD_ECS_METADATA_DISABLED").env("MB_TEST_ONLY_ECS_METADATA_ENDPOINT", &url);
        }
    };
    let sts = {
        let (url, token_file) = (sts_400.url(), token_file.clone());
        move |c: &mut Command| {
            c.env("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/r")
                .env("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/p")
                .env("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &token_file)
                .env("ALIBABA_CLOUD_STS_ENDPOINT", &url);
        }
    };
    let cases: Vec<(Box<Setup>, &[&str])> = vec![
        (Box::new(uri(&uri_403)), &["ALIBABA_CLOUD_CREDENTIALS_URI", "403", "Forbidden"]),
        (Box::new(uri(&uri_500)), &["ALIBABA_CLOUD_CREDENTIALS_URI", "500", "InternalError"]),
        (Box::new(ecs(&ecs_403)), &["ECS RAM role", "403"]),
        (Box::new(ecs(&ecs_500)), &["ECS RAM role", "500"]),
        (Box::new(sts), &["AssumeRoleWithOIDC", "400", "InvalidParameter.OIDCToken"]),
    ];
    for (setup, needles) in &cases {
        for verbose in [false, true] {
            fails_without_the_body(&get(&**setup, verbose), needles);
        }
    }
    assert!(uri_500.hits().len() > 1, "a 500 is retried: {:?}", uri_500.hits());
}

/// A stage at `endpoint` with an empty credential chain, HOME in `home`.
fn at(endpoint: &str, home: &Path) -> Command {
    let mut c = stage("mb-oss-get");
    for var in CHAIN_VARS {
        c.env_remove(var);
    }
    c.env("HOME", home).env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true").env("OSS_REGION", "cn-hangzhou").args([
        "--endpoint",
        endpoint,
        "--bucket",
        BUCKET,
        "--key",
        "k",
    ]);
    c
}

#[test]
fn endpoints_that_never_answer_fail_within_30_s_naming_them() {
    let home = temp_dir();
    let (hung_uri, hung_ecs, hung_oss) = (Silent::start(), Silent::start(), Silent::start());
    let (dead_uri, dead_ecs, dead_oss) = (refused_host_port(), refused_host_port(), refused_host_port());
    let server = v4_only_server();
    let keys = |c: &mut Command| {
        c.env("OSS_ACCESS_KEY_ID", server.access_key_id()).env("OSS_ACCESS_KEY_SECRET", server.secret());
    };
    let via_uri = |addr: &str| {
        let mut c = at(&server.endpoint(), home.path());
        c.env("ALIBABA_CLOUD_CREDENTIALS_URI", format!("http://{addr}/credentials?token=t"));
        c
    };
    let via_ecs = |addr: &str| {
        let mut c = at(&server.endpoint(), home.path());
        c.env_remove("ALIBABA_CLOUD_ECS_METADATA_DISABLED")
            .env("MB_TEST_ONLY_ECS_METADATA_ENDPOINT", format!("http://{addr}"));
        c
    };
    let to_oss = |addr: &str| {
        let mut c = at(&format!("http://{addr}"), home.path());
        keys(&mut c);
        c
    };
    // All at once: the hung ones each take up to the default bound.
    let cases: Vec<(Command, String, &str)> = vec![
        (via_uri(&hung_uri.host_port()), hung_uri.host_port(), "credentials URI"),
        (via_ecs(&hung_ecs.host_port()), hung_ecs.host_port(), "ECS metadata"),
        (to_oss(&hung_oss.host_port()), hung_oss.host_port(), "OSS endpoint"),
        (via_uri(&dead_uri), dead_uri.clone(), "credentials URI"),
        (via_ecs(&dead_ecs), dead_ecs.clone(), "ECS metadata"),
        (to_oss(&dead_oss), dead_oss.clone(), "OSS endpoint"),
    ];
    let runs: Vec<_> = cases
        .into_iter()
        .map(|(mut c, addr, what)| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let output = run_with_input(&mut c, b"");
                (output, started.elapsed(), addr, what)
            })
        })
        .collect();
    for run in runs {
        let (output, took, addr, what) = run.join().unwrap();
        let text = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{what} at {addr}: {text}");
        assert!(took < Duration::from_secs(30), "{what} at {addr} took {took:?} to fail: {text}");
        let last = text.lines().last().unwrap_or("");
        eprintln!("{what} at {addr}: failed after {took:.1?}: {last}");
        assert!(last.contains(&addr) && last.contains(what), "{what} at {addr} not named: {text}");
        assert!(!last.contains("token=t"), "the URI's query is printed: {last}");
    }
}

#[test]
fn trailing_data_after_a_valid_stream_still_passes_the_whole_stream_on() {
    let tar = std::fs::read(fixture("mb-apply", "good.tar")).unwrap();
    for codec in ["gzip", "zstd"] {
        let packed = run_with_input(stage("mb-pack").args(["--codec", codec]), &tar);
        assert_ok(&packed);
        let mut damaged = packed.stdout.clone();
        damaged.extend_from_slice(b"GARBAGE AFTER THE END");
        let unpacked = run_with_input(stage("mb-pack").arg("-d"), &damaged);
        assert_fails_with(&unpacked, 3, "trailing data");
        assert!(unpacked.stdout == tar, "{codec}: mb-pack -d withheld {} bytes", tar.len() - unpacked.stdout.len());
        let applied = run_with_input(stage("mb-apply").arg("--dry-run"), &unpacked.stdout);
        assert_ok(&applied);
    }
}

/// `good.tar` with its first entry's header changed by `edit` (checksum redone).
fn with_first_header(edit: impl Fn(&mut [u8; 512])) -> Vec<u8> {
    let mut tar = std::fs::read(fixture("mb-apply", "good.tar")).unwrap();
    let mut block: [u8; 512] = tar[..512].try_into().unwrap();
    edit(&mut block);
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    tar[..512].copy_from_slice(&block);
    tar
}

#[test]
fn tar_header_errors_quote_bytes_escaped() {
    let name = |block: &mut [u8; 512]| {
        let evil = b"fixture/\x1b[2J\x07bell\x01.bson.000001";
        block[..100].fill(0);
        block[..evil.len()].copy_from_slice(evil);
    };
    let size = |block: &mut [u8; 512]| block[124..136].copy_from_slice(b"\x1b[31m\x07\x08zz\x7f\0\0");
    for (what, edit) in [("name", &name as &dyn Fn(&mut [u8; 512])), ("size", &size)] {
        let output = run_with_input(stage("mb-apply").arg("--dry-run"), &with_first_header(edit));
        let text = stderr_of(&output);
        assert_eq!(output.status.code(), Some(3), "{what}: {text}");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{what}: raw control bytes in the message: {text:?}"
        );
        assert!(text.contains("\\u{1b}"), "{what}: the escape byte is not shown escaped: {text:?}");
        assert_eq!(text.trim_end().lines().count(), 1, "{what}: {text:?}");
    }
}

/// With only `file` (under a fresh HOME) holding `content`, a run finds no
/// credentials and warns once, naming each of `needles`.
fn a_skipped_profile_warns_once(file: &str, content: &str, needles: &[&str]) {
    let server = v4_only_server();
    let home = temp_dir();
    let path = home.path().join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    let mut c = bare(&server, "mb-oss-get", home.path());
    c.args(["--key", "k"]);
    let output = run_with_input(&mut c, b"");
    assert_fails_with(&output, 1, "no OSS credentials found");
    let text = stderr_of(&output);
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    for needle in needles {
        assert!(warnings[0].contains(needle), "{needle} missing: {text}");
    }
}

#[test]
fn a_profile_with_an_unsupported_mode_is_skipped_with_a_warning() {
    let config = r#"{"current":"work","profiles":[
        {"name":"work","mode":"RamRoleArn","access_key_id":"AK","access_key_secret":"SK","ram_role_arn":"acs:ram::1:role/r"}]}"#;
    a_skipped_profile_warns_once(".aliyun/config.json", config, &["~/.aliyun/config.json", "\"work\"", "RamRoleArn"]);
}

#[test]
fn a_credentials_file_profile_of_an_unsupported_type_is_skipped_with_a_warning() {
    let credentials =
        "[default]\ntype = ram_role_arn\naccess_key_id = AK\naccess_key_secret = SK\nrole_arn = acs:ram::1:role/r\n";
    let needles = ["~/.alibabacloud/credentials", "\"default\"", "ram_role_arn"];
    a_skipped_profile_warns_once(".alibabacloud/credentials", credentials, &needles);
}
