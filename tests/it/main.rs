//! The one integration test target: runs the real `mb-*` binaries in temp
//! dirs against a real `mongod` and the suite's own OSS-compatible server.

mod support;

mod apply;
mod cli_help;
mod config_check;
mod dump;
mod dump_parallel;
mod encryption;
mod errors_actionable;
mod incremental;
mod install;
mod metrics;
mod oss_conformance;
mod oss_credentials;
mod oss_done;
mod oss_sdk;
mod oss_stages;
mod oss_upload;
mod pack;
mod pack_zstd;
mod progress;
mod recovery;
mod recovery_damage;
mod replay;
mod replay_parallel;
mod replay_random;
mod restore_cases;
mod retention;
mod roundtrip;
mod scripts;
mod scripts_codecs;
mod secondary;
mod selective;
mod stage_cases;
mod status;
mod verify;
mod zoo_cases;
mod zoo_users;
