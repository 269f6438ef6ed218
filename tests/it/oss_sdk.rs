//! The suite's OSS server checked by Alibaba's own client: the official
//! Python SDK v2 (V4 signatures) puts, gets, range-gets, lists and uploads in
//! parts under odd keys, and is refused with a wrong secret or region
//! (tests/sdk/oss_sdk_check.py); then it reads what mb-oss-put stored, with
//! the CRC-64 mb recorded.

use crate::support::oss_server;
use crate::support::{assert_ok, run_with_input, sdk, stage};

#[test]
fn official_sdk_agrees_with_the_suite_server_and_reads_mb_objects() {
    if sdk::unavailable().is_some() {
        return;
    }
    let server = oss_server::start();
    server.create_bucket("sdk");
    server.set_v4_only(true);
    let mut objects = Vec::new();
    for (key, len) in [("mb/small é+%.bin", 5_000usize), ("mb/multipart.bin", 450_000)] {
        let data = crate::support::pseudo_random(len, len as u32);
        let mut put = stage("mb-oss-put");
        put.env_remove("OSS_ACCESS_KEY_ID")
            .env_remove("OSS_ACCESS_KEY_SECRET")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", server.access_key_id())
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", server.secret())
            .args(["--endpoint", &server.endpoint(), "--region", "cn-hangzhou", "--bucket", "sdk"])
            .args(["--key", key, "--part-size", "100KiB"]);
        let output = run_with_input(&mut put, &data);
        assert_ok(&output);
        let record: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        objects.push((key.to_string(), record["size"].as_u64().unwrap(), record["crc64"].as_u64().unwrap()));
    }
    sdk::check(&server, "sdk", &objects);
}
