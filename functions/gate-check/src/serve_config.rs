//! Edits of tailscaled's ServeConfig JSON, kept at the `serde_json::Value` level so every field
//! this code does not know (other hosts, `Services`, `Foreground` sessions, fields a newer
//! tailscaled adds) passes through untouched.
//!
//! Shapes as of Tailscale v1.88 (`ipn/serve.go`): `TCP` maps a port (a JSON string) to
//! `{"HTTPS": true}` (or `HTTP`, `TCPForward`, …); `Web` maps `"host:port"` to
//! `{"Handlers": {mount: {"Proxy": url}}}`; `AllowFunnel` maps `"host:port"` to `true`.
//! tailscaled omits empty maps (`omitempty`), so empty ones are removed here too.
//!
//! The hub's entries are recognised by value, not by position: a handler is the hub's when it
//! sits at one of the hub's mounts *and* proxies to exactly the URL the gate set there. A
//! handler someone else put at the same mount is foreign and never touched.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What the gate publishes when open: one host:port and a proxy handler per public path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `"<MagicDNS name>:<funnel port>"`, the key of `Web` and `AllowFunnel`.
    pub host_port: String,
    pub funnel_port: u16,
    /// (mount, proxy URL), e.g. `("/api/webhook/github", "http://127.0.0.1:8086/api/webhook/github")`.
    pub handlers: Vec<(String, String)>,
}

impl Plan {
    /// Funnel to `http://127.0.0.1:<public_port><path>` for each path. tailscaled strips the
    /// mount from the request path and appends the rest to the proxy URL's path, so a proxy
    /// carrying the path itself reaches the same route.
    pub fn new(host: &str, funnel_port: u16, public_port: u16, paths: &[String]) -> Self {
        Self {
            host_port: format!("{host}:{funnel_port}"),
            funnel_port,
            handlers: paths
                .iter()
                .map(|p| (p.clone(), format!("http://127.0.0.1:{public_port}{p}")))
                .collect(),
        }
    }
}

/// Why the gate will not open: the place it would write holds someone else's entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// An unknown shape: refused rather than rewritten.
    #[error("{0} in the serve config is not a JSON object")]
    Shape(String),
    #[error("{host_port}{mount} is served by something else ({found}); not overwriting it")]
    Mount {
        host_port: String,
        mount: String,
        found: String,
    },
    #[error("TCP port {port} is configured as {found}, not HTTPS; not overwriting it")]
    Port { port: u16, found: String },
}

fn handler_of<'a>(cfg: &'a Value, host_port: &str, mount: &str) -> Option<&'a Value> {
    cfg.get("Web")?.get(host_port)?.get("Handlers")?.get(mount)
}

fn is_ours(handler: Option<&Value>, proxy: &str) -> bool {
    handler.and_then(|h| h.get("Proxy")).and_then(Value::as_str) == Some(proxy)
}

fn child<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, Conflict> {
    parent
        .entry(key.to_owned())
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| Conflict::Shape(key.to_owned()))
}

/// `cfg` with the hub published per `plan`. A mount or port held by a foreign entry is a
/// [`Conflict`]; the hub's own entries of an older plan (`previous`: another public port, say)
/// are replaced.
pub fn open(cfg: &Value, plan: &Plan, previous: Option<&Plan>) -> Result<Value, Conflict> {
    let mut out = cfg.clone();
    for (mount, proxy) in &plan.handlers {
        let found = handler_of(cfg, &plan.host_port, mount);
        let old_proxy = previous.and_then(|p| {
            (p.host_port == plan.host_port)
                .then(|| p.handlers.iter().find(|(m, _)| m == mount))
                .flatten()
                .map(|(_, proxy)| proxy.as_str())
        });
        let replaceable = found.is_none()
            || is_ours(found, proxy)
            || old_proxy.is_some_and(|o| is_ours(found, o));
        if !replaceable {
            return Err(Conflict::Mount {
                host_port: plan.host_port.clone(),
                mount: mount.clone(),
                found: found.map(Value::to_string).unwrap_or_default(),
            });
        }
    }
    let port = plan.funnel_port.to_string();
    if let Some(existing) = cfg.get("TCP").and_then(|t| t.get(&port)) {
        if existing != &json!({"HTTPS": true}) {
            return Err(Conflict::Port {
                port: plan.funnel_port,
                found: existing.to_string(),
            });
        }
    }
    if out.is_null() {
        out = json!({});
    }
    let root = out
        .as_object_mut()
        .ok_or_else(|| Conflict::Shape("the top level".into()))?;
    child(root, "TCP")?.insert(port, json!({"HTTPS": true}));
    let handlers = child(child(child(root, "Web")?, &plan.host_port)?, "Handlers")?;
    for (mount, proxy) in &plan.handlers {
        handlers.insert(mount.clone(), json!({"Proxy": proxy}));
    }
    child(root, "AllowFunnel")?.insert(plan.host_port.clone(), Value::Bool(true));
    Ok(out)
}

/// `cfg` without the hub: its handlers under each of `plans` and their `AllowFunnel` entries
/// go; a host:port left without handlers goes, and its TCP port when no other host serves on
/// it and it holds what the gate would have set. Foreign entries stay as they are.
pub fn close(cfg: &Value, plans: &[&Plan]) -> Value {
    let mut out = cfg.clone();
    let Some(root) = out.as_object_mut() else {
        return out;
    };
    for plan in plans {
        if let Some(Value::Object(web)) = root.get_mut("Web") {
            let mut emptied = false;
            if let Some(Value::Object(site)) = web.get_mut(&plan.host_port) {
                if let Some(Value::Object(handlers)) = site.get_mut("Handlers") {
                    for (mount, proxy) in &plan.handlers {
                        if is_ours(handlers.get(mount), proxy) {
                            handlers.remove(mount);
                        }
                    }
                    emptied = handlers.is_empty();
                }
            }
            if emptied {
                web.remove(&plan.host_port);
            }
        }
        if let Some(Value::Object(funnel)) = root.get_mut("AllowFunnel") {
            funnel.remove(&plan.host_port);
        }
        let suffix = format!(":{}", plan.funnel_port);
        let port_in_use = matches!(root.get("Web"), Some(Value::Object(web))
            if web.keys().any(|k| k.ends_with(&suffix)));
        if !port_in_use {
            if let Some(Value::Object(tcp)) = root.get_mut("TCP") {
                let port = plan.funnel_port.to_string();
                if tcp.get(&port) == Some(&json!({"HTTPS": true})) {
                    tcp.remove(&port);
                }
            }
        }
    }
    for key in ["Web", "TCP", "AllowFunnel"] {
        if matches!(root.get(key), Some(Value::Object(m)) if m.is_empty()) {
            root.remove(key);
        }
    }
    out
}

/// One line on what the hub has in `cfg`, for run summaries.
pub fn describe(cfg: &Value, plan: &Plan) -> String {
    let ours: Vec<&str> = plan
        .handlers
        .iter()
        .filter(|(m, p)| is_ours(handler_of(cfg, &plan.host_port, m), p))
        .map(|(m, _)| m.as_str())
        .collect();
    let funnel =
        cfg.get("AllowFunnel").and_then(|f| f.get(&plan.host_port)) == Some(&Value::Bool(true));
    format!(
        "{} hub handler(s) [{}], funnel {} on {}",
        ours.len(),
        ours.join(", "),
        if funnel { "on" } else { "off" },
        plan.host_port
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the live config publishes exactly what `plan` asks for.
    fn is_open(cfg: &Value, plan: &Plan) -> bool {
        let port = plan.funnel_port.to_string();
        let https = cfg
            .get("TCP")
            .and_then(|t| t.get(&port))
            .and_then(|p| p.get("HTTPS"))
            == Some(&Value::Bool(true));
        let funnel =
            cfg.get("AllowFunnel").and_then(|f| f.get(&plan.host_port)) == Some(&Value::Bool(true));
        https
            && funnel
            && plan
                .handlers
                .iter()
                .all(|(m, p)| is_ours(handler_of(cfg, &plan.host_port, m), p))
    }

    /// Whether any handler of the hub (under any of `plans`) is still in the config.
    fn has_hub_handlers(cfg: &Value, plans: &[&Plan]) -> bool {
        plans.iter().any(|plan| {
            plan.handlers
                .iter()
                .any(|(m, p)| is_ours(handler_of(cfg, &plan.host_port, m), p))
        })
    }

    fn plan() -> Plan {
        Plan::new("hub.ts.net", 443, 8086, &["/api/webhook/github".to_owned()])
    }

    fn foreign() -> Value {
        json!({
            "TCP": {"443": {"HTTPS": true}, "22": {"TCPForward": "127.0.0.1:22"}},
            "Web": {"hub.ts.net:443": {"Handlers": {"/grafana": {"Proxy": "http://127.0.0.1:3000", "Future": 1}}}},
            "Services": {"svc:db": {"Tun": true}},
            "Unknown": {"kept": true}
        })
    }

    #[test]
    fn open_on_null_builds_the_three_entries() {
        let out = open(&Value::Null, &plan(), None).expect("opens");
        assert_eq!(
            out,
            json!({
                "TCP": {"443": {"HTTPS": true}},
                "Web": {"hub.ts.net:443": {"Handlers": {"/api/webhook/github":
                    {"Proxy": "http://127.0.0.1:8086/api/webhook/github"}}}},
                "AllowFunnel": {"hub.ts.net:443": true}
            })
        );
        assert!(is_open(&out, &plan()));
        assert!(!is_open(&Value::Null, &plan()));
    }

    #[test]
    fn open_then_close_keeps_foreign_entries_byte_for_byte() {
        let before = foreign();
        let opened = open(&before, &plan(), None).expect("opens");
        assert_eq!(opened["Services"], before["Services"]);
        assert_eq!(
            opened["Web"]["hub.ts.net:443"]["Handlers"]["/grafana"]["Future"],
            1
        );
        let closed = close(&opened, &[&plan()]);
        // The foreign site keeps port 443 and its handler; the funnel entry was the hub's.
        assert_eq!(closed, before);
        assert!(!has_hub_handlers(&closed, &[&plan()]));
    }

    #[test]
    fn close_removes_the_port_and_empty_maps_it_created() {
        let opened = open(&Value::Null, &plan(), None).expect("opens");
        assert_eq!(close(&opened, &[&plan()]), json!({}));
    }

    #[test]
    fn a_foreign_handler_at_the_hub_mount_is_a_conflict_and_survives_close() {
        let cfg = json!({"Web": {"hub.ts.net:443": {"Handlers": {"/api/webhook/github": {"Proxy": "http://10.0.0.9:9"}}}}});
        let err = open(&cfg, &plan(), None).expect_err("refuses");
        assert!(matches!(err, Conflict::Mount { .. }), "{err}");
        assert_eq!(close(&cfg, &[&plan()]), cfg);
    }

    #[test]
    fn a_tcp_forward_on_the_funnel_port_is_a_conflict() {
        let cfg = json!({"TCP": {"443": {"TCPForward": "127.0.0.1:8443"}}});
        assert!(matches!(
            open(&cfg, &plan(), None),
            Err(Conflict::Port { port: 443, .. })
        ));
    }

    #[test]
    fn a_new_public_port_replaces_the_hub_handler_of_the_old_one() {
        let old = Plan::new("hub.ts.net", 443, 9000, &["/api/webhook/github".to_owned()]);
        let live = open(&Value::Null, &old, None).expect("opens");
        let out = open(&live, &plan(), Some(&old)).expect("replaces its own");
        assert!(is_open(&out, &plan()));
        assert!(!is_open(&live, &plan()), "the old port is drift");
    }

    #[test]
    fn describe_names_the_hub_entries() {
        let opened = open(&Value::Null, &plan(), None).expect("opens");
        assert_eq!(
            describe(&opened, &plan()),
            "1 hub handler(s) [/api/webhook/github], funnel on on hub.ts.net:443"
        );
        assert_eq!(
            describe(&Value::Null, &plan()),
            "0 hub handler(s) [], funnel off on hub.ts.net:443"
        );
    }
}
