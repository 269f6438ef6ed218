//! Why a profile file gave no keys. reqsign skips a `~/.aliyun/config.json`
//! profile whose `mode` it cannot use (RamRoleArn, EcsRamRole, ...), and a
//! `~/.alibabacloud/credentials` profile whose `type` it cannot use
//! (ram_role_arn, ecs_ram_role, ...), without a word, and the chain then
//! falls through to other sources: the user should hear which profile and
//! mode were skipped.

/// The modes reqsign reads keys from (case-insensitive).
const SUPPORTED_MODES: [&str; 4] = ["ak", "ststoken", "sts_token", "sts"];

/// Why the Alibaba CLI config file's selected profile was skipped, if it
/// exists and names a mode mb cannot use: one clause, names quoted.
pub(super) fn unsupported_config_profile() -> Option<String> {
    let (label, path) = match std::env::var("ALIBABA_CLOUD_CONFIG_FILE").ok().filter(|p| !p.is_empty()) {
        Some(path) => (path.clone(), std::path::PathBuf::from(path)),
        None => {
            let home = std::env::var_os("HOME")?;
            ("~/.aliyun/config.json".to_string(), std::path::Path::new(&home).join(".aliyun/config.json"))
        }
    };
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let wanted = std::env::var("ALIBABA_CLOUD_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .or_else(|| config.get("current").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_else(|| "default".to_string());
    let profile = config
        .get("profiles")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(wanted.as_str()))?;
    let mode = profile.get("mode")?.as_str()?;
    if SUPPORTED_MODES.contains(&mode.trim().to_ascii_lowercase().as_str()) {
        return None;
    }
    Some(format!("{label}: profile {wanted:?} has mode {mode:?}, which mb cannot use (only AK and StsToken); skipped"))
}

/// The types reqsign reads keys from in the INI credentials file (case-insensitive).
const SUPPORTED_TYPES: [&str; 3] = ["access_key", "sts", "sts_token"];

/// Why the INI credentials file's profile (`ALIBABA_CLOUD_CREDENTIALS_FILE`,
/// else `~/.alibabacloud/credentials`; profile `ALIBABA_CLOUD_PROFILE`, else
/// `default`) was skipped, if its `type` is one mb cannot use.
pub(super) fn unsupported_credentials_profile() -> Option<String> {
    let (label, path) = match std::env::var("ALIBABA_CLOUD_CREDENTIALS_FILE").ok().filter(|p| !p.is_empty()) {
        Some(path) => (path.clone(), std::path::PathBuf::from(path)),
        None => {
            let home = std::env::var_os("HOME")?;
            ("~/.alibabacloud/credentials".to_string(), std::path::Path::new(&home).join(".alibabacloud/credentials"))
        }
    };
    let text = String::from_utf8_lossy(&std::fs::read(path).ok()?).into_owned();
    let ini = ini::Ini::load_from_str(&text).ok()?;
    let wanted =
        std::env::var("ALIBABA_CLOUD_PROFILE").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "default".into());
    let kind = ini.section(Some(wanted.as_str()))?.get("type")?;
    if SUPPORTED_TYPES.contains(&kind.trim().to_ascii_lowercase().as_str()) {
        return None;
    }
    Some(format!(
        "{label}: profile {wanted:?} has type {kind:?}, which mb cannot use (only access_key and sts); skipped"
    ))
}
