use super::*;
use std::collections::HashMap;
use std::path::Path;

fn config(env: &[(&str, &str)]) -> Result<BackupConfig, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let src = Source::from_parts(None, env).expect("source");
    BackupConfig::from_source(&src, std::path::Path::new("/var/lib/hub"))
}

#[test]
fn without_settings_the_hub_store_goes_to_the_data_dir() {
    let cfg = config(&[]).expect("valid");
    assert_eq!(cfg.sets.len(), 1);
    assert!(matches!(cfg.sets[0].kind, SetKind::HubStore));
    assert_eq!(cfg.sets[0].policy, DEFAULT_POLICY);
    assert!(
        matches!(&cfg.target, TargetConfig::Local { dir } if dir == std::path::Path::new("/var/lib/hub/backups"))
    );
    assert!(cfg.verify_readback);
}

#[test]
fn the_simple_cases_come_from_the_environment() {
    let cfg = config(&[
        ("BACKUP_DATABASE_URL", "postgres://u:p@db/homelab"),
        (
            "BACKUP_DIRS",
            "grafana=/var/lib/grafana, loki=/var/lib/loki",
        ),
        ("BACKUP_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("BACKUP_S3_BUCKET", "backups"),
        ("BACKUP_S3_PREFIX", "/homelab/"),
        ("BACKUP_S3_ACCESS_KEY_ID", "AKIA"),
        ("BACKUP_S3_SECRET_ACCESS_KEY", "secret"),
        ("BACKUP_KEEP_DAILY", "7"),
        ("BACKUP_KEEP_MONTHLY", "6"),
    ])
    .expect("valid");
    let names: Vec<&str> = cfg.sets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["postgres", "grafana", "loki"]);
    assert_eq!(
        cfg.sets[2].policy,
        Policy {
            keep_daily: 7,
            keep_monthly: 6,
            ..Policy::default()
        }
    );
    let TargetConfig::S3(s3) = &cfg.target else {
        panic!("S3 target")
    };
    assert_eq!(
        (s3.prefix.as_str(), s3.region.as_str()),
        ("homelab", "us-east-1")
    );
}

#[test]
fn bad_settings_name_themselves() {
    for (env, setting) in [
        (vec![("BACKUP_DIRS", "grafana")], "BACKUP_DIRS"),
        (vec![("BACKUP_DIRS", "g=relative/path")], "BACKUP_DIRS"),
        (vec![("BACKUP_DIRS", "Bad Name=/x")], "set name"),
        (vec![("BACKUP_DIRS", "a=/x,a=/y")], "twice"),
        (
            vec![("BACKUP_S3_ENDPOINT", "minio:9000")],
            "BACKUP_S3_ENDPOINT",
        ),
        (
            vec![("BACKUP_S3_ENDPOINT", "http://minio:9000")],
            "BACKUP_S3_BUCKET",
        ),
        (vec![("BACKUP_KEEP_LAST", "-1")], "BACKUP_KEEP_LAST"),
        (
            vec![("BACKUP_AGE_RECIPIENTS", "age1xyz")],
            "BACKUP_AGE_RECIPIENTS",
        ),
    ] {
        let err = config(&env).expect_err("invalid").to_string();
        assert!(err.contains(setting), "{env:?}: {err}");
    }
}

fn key() -> String {
    age::x25519::Identity::generate().to_public().to_string()
}

#[test]
fn recipients_apply_to_every_set_unless_a_set_names_its_own() {
    let (a, b, own) = (key(), key(), key());
    let file = tempfile::NamedTempFile::new().expect("hub.toml");
    std::fs::write(
        file.path(),
        format!(
            "[minio_backup.sets.loki]\nkind = \"dir\"\npath = \"/var/lib/loki\"\n\
             age_recipients = [\"{own}\"]\n\
             [minio_backup.sets.tempo]\nkind = \"dir\"\npath = \"/var/lib/tempo\"\n"
        ),
    )
    .expect("write");
    let env = HashMap::from([
        (
            "BACKUP_DIRS".to_owned(),
            "grafana=/var/lib/grafana".to_owned(),
        ),
        ("BACKUP_AGE_RECIPIENTS".to_owned(), format!("{a}, {b}")),
        (
            "BACKUP_AGE_IDENTITY_FILE".to_owned(),
            "/root/backup.key".to_owned(),
        ),
    ]);
    let src = Source::from_parts(Some(file.path()), env).expect("source");
    let cfg = BackupConfig::from_source(&src, Path::new("/var/lib/hub")).expect("valid");
    let to: Vec<(&str, Vec<String>)> = cfg
        .sets
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.encrypt_to.as_ref().map_or_else(Vec::new, |r| r.keys()),
            )
        })
        .collect();
    assert_eq!(
        to,
        [
            ("grafana", vec![a.clone(), b.clone()]),
            ("loki", vec![own]),
            ("tempo", vec![a, b])
        ]
    );
    assert_eq!(
        cfg.age_identity_file.as_deref(),
        Some(Path::new("/root/backup.key"))
    );
    assert!(config(&[]).expect("valid").sets[0].encrypt_to.is_none());
}

#[test]
fn a_bad_recipient_names_the_setting_and_not_the_value() {
    let secret = age::x25519::Identity::generate().to_string();
    let secret = age::secrecy::ExposeSecret::expose_secret(&secret).to_owned();
    for value in [format!("{},age1typo", key()), secret.clone(), " , ".into()] {
        let err = config(&[("BACKUP_AGE_RECIPIENTS", &value)])
            .expect_err("invalid")
            .to_string();
        assert!(err.contains("BACKUP_AGE_RECIPIENTS"), "{err}");
        assert!(!err.contains("age1typo") && !err.contains(&secret), "{err}");
    }
    let file = tempfile::NamedTempFile::new().expect("hub.toml");
    std::fs::write(
        file.path(),
        "[minio_backup.sets.loki]\nkind = \"dir\"\npath = \"/l\"\nage_recipients = [1]\n",
    )
    .expect("write");
    let src = Source::from_parts(Some(file.path()), HashMap::new()).expect("source");
    let err = BackupConfig::from_source(&src, Path::new("/var/lib/hub"))
        .expect_err("invalid")
        .to_string();
    assert!(
        err.contains("minio_backup.sets.loki.age_recipients"),
        "{err}"
    );
}
