//! The plugins and routes a node runs: the config file's `[[plugins]]` and
//! `[[routes]]`, then the changes made over the API (kept in the data
//! directory, replayed at start). Pure: the API and the start-up both change
//! it through these checks, so a route added over the API is held to the same
//! rules as one in the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{Config, PluginConfig, Quotas, RouteConfig};

/// At most this many plugins and routes (the API cannot grow the table, or
/// the file it is kept in, without end).
pub const MAX_PLUGINS: usize = 1_000;
pub const MAX_ROUTES: usize = 10_000;

#[derive(Debug, Error, PartialEq)]
pub enum CatalogError {
    #[error("no plugin named {0:?}")]
    UnknownPlugin(String),
    #[error("no route with id {0:?}")]
    UnknownRoute(String),
    #[error("plugin {plugin:?} is in use by route {route:?}: change or remove the route first")]
    PluginInUse { plugin: String, route: String },
    #[error("{0:?} is not a valid id: 1 to 64 letters, digits or _ - . * + ~ @")]
    BadId(String),
    #[error(
        "route {id:?} would never match: route {by:?} (number {number:?}) takes its calls first; \
         put it before that route (\"before\": {by:?})"
    )]
    Shadowed {
        id: String,
        by: String,
        number: String,
    },
    #[error("at most {0} {1}")]
    TooMany(usize, &'static str),
    #[error("{0}")]
    Invalid(String),
}

/// A route with the id the API knows it by.
#[derive(Debug, Clone)]
pub struct NamedRoute {
    pub id: String,
    pub route: RouteConfig,
}

/// A plugin's settings as the API takes them (its component is deployed
/// separately, to `PUT /api/plugins/{name}`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    #[serde(default)]
    pub grants: Vec<String>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Quota caps by name; those not named keep the built-in defaults.
    #[serde(default)]
    pub quotas: Option<serde_json::Value>,
}

/// One change made over the API, as kept on disk.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Change {
    /// Adds or replaces a plugin's settings (`settings` as the API took them).
    PutPlugin {
        name: String,
        settings: serde_json::Value,
    },
    DeletePlugin {
        name: String,
    },
    /// Adds or replaces a route, placed before route `before` (last if none).
    PutRoute {
        id: String,
        before: Option<String>,
        route: serde_json::Value,
    },
    DeleteRoute {
        id: String,
    },
}

impl Change {
    /// What the change is about: a later change to the same thing makes it moot.
    fn subject(&self) -> (bool, &str) {
        match self {
            Change::PutPlugin { name, .. } | Change::DeletePlugin { name } => (true, name),
            Change::PutRoute { id, .. } | Change::DeleteRoute { id } => (false, id),
        }
    }
}

/// The changes made over the API, in order, one per plugin or route (a later
/// change replaces an earlier one to the same thing).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Changes {
    pub changes: Vec<Change>,
}

impl Changes {
    /// Where they are kept.
    pub fn path(data: &Path) -> PathBuf {
        data.join("api-changes.json")
    }

    /// Reads the kept changes (none if there is no file yet).
    pub fn load(data: &Path) -> Result<Changes, String> {
        let path = Changes::path(data);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: {e} (fix or remove the file)", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Changes::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Keeps them: written whole and synced, then renamed over the old file,
    /// so a crash leaves the old list or the new, never half of one.
    pub fn save(&self, data: &Path) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(data)?;
        let path = Changes::path(data);
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    /// Adds a change; an earlier one to the same plugin or route goes.
    pub fn record(&mut self, change: Change) {
        let subject = change.subject();
        self.changes.retain(|c| c.subject() != subject);
        self.changes.push(change);
    }
}

/// The plugins and routes in force.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub plugins: Vec<PluginConfig>,
    pub routes: Vec<NamedRoute>,
}

/// Whether `id` may name a route or a plugin (it appears in URLs).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.*+~@".contains(c))
}

/// Whether every call pattern `wide` matches also matches `narrow`'s.
fn pattern_covers(wide: &str, narrow: &str) -> bool {
    match wide.strip_suffix('*') {
        Some(prefix) => narrow.starts_with(prefix),
        None => wide == narrow,
    }
}

impl Catalog {
    /// The config file's plugins and routes. A route's id is its `id`, or its
    /// number (`100`, then `100~2` for a second route on 100, and so on).
    pub fn from_config(config: &Config) -> Catalog {
        let mut routes: Vec<NamedRoute> = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            let base = r.id.clone().unwrap_or_else(|| r.number.clone());
            let mut id = base.clone();
            let mut n = 1;
            while routes.iter().any(|x| x.id == id) {
                n += 1;
                id = format!("{base}~{n}");
            }
            routes.push(NamedRoute {
                id,
                route: r.clone(),
            });
        }
        Catalog {
            plugins: config.plugins.clone(),
            routes,
        }
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }

    pub fn route(&self, id: &str) -> Option<&NamedRoute> {
        self.routes.iter().find(|r| r.id == id)
    }

    /// The route after `id` (where a route replaced in place goes back).
    pub fn next_route_id(&self, id: &str) -> Option<String> {
        let i = self.routes.iter().position(|r| r.id == id)?;
        self.routes.get(i + 1).map(|r| r.id.clone())
    }

    /// Adds or replaces a plugin's settings; its component is kept at `path`.
    pub fn put_plugin(
        &mut self,
        name: &str,
        settings: &serde_json::Value,
        path: PathBuf,
    ) -> Result<(), CatalogError> {
        if !valid_id(name) {
            return Err(CatalogError::BadId(name.into()));
        }
        let s: PluginSettings = serde_json::from_value(settings.clone())
            .map_err(|e| CatalogError::Invalid(format!("plugin {name:?} settings: {e}")))?;
        let quotas: Quotas = match s.quotas {
            Some(q) => serde_json::from_value(q)
                .map_err(|e| CatalogError::Invalid(format!("plugin {name:?} quotas: {e}")))?,
            None => Quotas::default(),
        };
        let config = match s.config {
            Some(c) => serde_json::from_value(c)
                .map_err(|e| CatalogError::Invalid(format!("plugin {name:?} config: {e}")))?,
            None => toml::Value::Table(Default::default()),
        };
        let entry = PluginConfig {
            name: name.into(),
            path,
            grants: s.grants,
            config,
            quotas,
        };
        match self.plugins.iter().position(|p| p.name == name) {
            Some(i) => self.plugins[i] = entry,
            None if self.plugins.len() >= MAX_PLUGINS => {
                return Err(CatalogError::TooMany(MAX_PLUGINS, "plugins"))
            }
            None => self.plugins.push(entry),
        }
        Ok(())
    }

    /// Removes a plugin no route (or fallback) uses.
    pub fn delete_plugin(&mut self, name: &str) -> Result<(), CatalogError> {
        if self.plugin(name).is_none() {
            return Err(CatalogError::UnknownPlugin(name.into()));
        }
        let user = self.routes.iter().find(|r| {
            r.route.plugin == name || r.route.fallback.as_ref().is_some_and(|f| f.plugin == name)
        });
        if let Some(r) = user {
            return Err(CatalogError::PluginInUse {
                plugin: name.into(),
                route: r.id.clone(),
            });
        }
        self.plugins.retain(|p| p.name != name);
        Ok(())
    }

    /// Parses a route as the API takes it (JSON, the config file's fields).
    pub fn parse_route(id: &str, body: &serde_json::Value) -> Result<RouteConfig, CatalogError> {
        let mut route: RouteConfig = serde_json::from_value(body.clone())
            .map_err(|e| CatalogError::Invalid(format!("route {id:?}: {e}")))?;
        route.id = Some(id.into());
        Ok(route)
    }

    /// Adds or replaces route `id`: before route `before`, or where it was,
    /// or last. Checked like a route in the file (its plugins exist, its
    /// schedule is valid); `strict` also refuses a route that an earlier one
    /// would always take the calls of.
    pub fn put_route(
        &mut self,
        id: &str,
        before: Option<&str>,
        route: RouteConfig,
        strict: bool,
    ) -> Result<(), CatalogError> {
        if !valid_id(id) {
            return Err(CatalogError::BadId(id.into()));
        }
        if self.plugin(&route.plugin).is_none() {
            return Err(CatalogError::UnknownPlugin(route.plugin.clone()));
        }
        if let Some(fb) = &route.fallback {
            if self.plugin(&fb.plugin).is_none() {
                return Err(CatalogError::UnknownPlugin(fb.plugin.clone()));
            }
        }
        if let Some(s) = &route.schedule {
            s.validate()
                .map_err(|e| CatalogError::Invalid(format!("route {id:?} schedule: {e}")))?;
        }
        let old = self.routes.iter().position(|r| r.id == id);
        let mut routes = self.routes.clone();
        if let Some(i) = old {
            routes.remove(i);
        } else if routes.len() >= MAX_ROUTES {
            return Err(CatalogError::TooMany(MAX_ROUTES, "routes"));
        }
        let at = match before {
            Some(b) if b == id => {
                return Err(CatalogError::Invalid(
                    "a route cannot go before itself".into(),
                ))
            }
            Some(b) => routes
                .iter()
                .position(|r| r.id == b)
                .ok_or_else(|| CatalogError::UnknownRoute(b.into()))?,
            None => old.unwrap_or(routes.len()),
        };
        if strict {
            let shadow = routes[..at].iter().find(|r| {
                let w = &r.route;
                w.caller.is_none()
                    && w.domain.is_none()
                    && w.schedule.is_none()
                    && pattern_covers(&w.number, &route.number)
            });
            if let Some(by) = shadow {
                return Err(CatalogError::Shadowed {
                    id: id.into(),
                    by: by.id.clone(),
                    number: by.route.number.clone(),
                });
            }
        }
        routes.insert(
            at,
            NamedRoute {
                id: id.into(),
                route,
            },
        );
        self.routes = routes;
        Ok(())
    }

    pub fn delete_route(&mut self, id: &str) -> Result<(), CatalogError> {
        let before = self.routes.len();
        self.routes.retain(|r| r.id != id);
        if self.routes.len() == before {
            return Err(CatalogError::UnknownRoute(id.into()));
        }
        Ok(())
    }

    /// Applies one kept change (`deployed` gives a plugin's component path).
    pub fn apply(
        &mut self,
        change: &Change,
        deployed: impl Fn(&str) -> PathBuf,
    ) -> Result<(), CatalogError> {
        match change {
            Change::PutPlugin { name, settings } => {
                // A plugin of the file keeps the file's component path (a
                // deployed version still wins over it at load).
                let path = self
                    .plugin(name)
                    .map(|p| p.path.clone())
                    .unwrap_or_else(|| deployed(name));
                self.put_plugin(name, settings, path)
            }
            Change::DeletePlugin { name } => self.delete_plugin(name),
            Change::PutRoute { id, before, route } => {
                let route = Catalog::parse_route(id, route)?;
                // A `before` that is gone (the file changed): last.
                let before = before.as_deref().filter(|b| self.route(b).is_some());
                self.put_route(id, before, route, false)
            }
            Change::DeleteRoute { id } => self.delete_route(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Catalog {
        let c = Config::parse(
            r#"
            [[plugins]]
            name = "ivr"
            path = "ivr.wasm"
            [[routes]]
            number = "100"
            plugin = "ivr"
            [[routes]]
            number = "100"
            plugin = "ivr"
            [[routes]]
            id = "rest"
            number = "*"
            plugin = "ivr"
            "#,
        )
        .unwrap();
        Catalog::from_config(&c)
    }

    fn ids(c: &Catalog) -> Vec<&str> {
        c.routes.iter().map(|r| r.id.as_str()).collect()
    }

    fn route(number: &str, plugin: &str) -> RouteConfig {
        Catalog::parse_route("x", &json!({ "number": number, "plugin": plugin })).unwrap()
    }

    #[test]
    fn routes_of_the_file_get_ids_from_their_numbers() {
        assert_eq!(ids(&base()), ["100", "100~2", "rest"]);
    }

    #[test]
    fn a_route_behind_a_catch_all_is_refused_naming_the_route_to_go_before() {
        let mut c = base();
        let e = c
            .put_route("sales", None, route("200", "ivr"), true)
            .unwrap_err();
        assert_eq!(
            e,
            CatalogError::Shadowed {
                id: "sales".into(),
                by: "rest".into(),
                number: "*".into()
            }
        );
        c.put_route("sales", Some("rest"), route("200", "ivr"), true)
            .unwrap();
        assert_eq!(ids(&c), ["100", "100~2", "sales", "rest"]);
        // Replaced in place.
        c.put_route("sales", None, route("201", "ivr"), true)
            .unwrap();
        assert_eq!(ids(&c), ["100", "100~2", "sales", "rest"]);
        assert_eq!(c.route("sales").unwrap().route.number, "201");
    }

    #[test]
    fn a_route_names_a_plugin_that_exists_and_a_plugin_in_use_stays() {
        let mut c = base();
        assert_eq!(
            c.put_route("x", Some("rest"), route("7", "nope"), true),
            Err(CatalogError::UnknownPlugin("nope".into()))
        );
        assert!(matches!(
            c.delete_plugin("ivr"),
            Err(CatalogError::PluginInUse { .. })
        ));
        assert!(matches!(
            c.put_route("a/b", None, route("7", "ivr"), true),
            Err(CatalogError::BadId(_))
        ));
        let e = Catalog::parse_route("x", &json!({"number": "7", "plugin": "ivr", "confg": {}}))
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `confg`"), "{e}");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut c = base();
        let r = c.routes[0].clone();
        while c.routes.len() < MAX_ROUTES {
            let id = format!("r{}", c.routes.len());
            c.routes.push(NamedRoute { id, ..r.clone() });
        }
        assert_eq!(
            c.put_route("one-more", None, route("9", "ivr"), false),
            Err(CatalogError::TooMany(MAX_ROUTES, "routes"))
        );
        // Replacing one is not adding one.
        assert!(c.put_route("r5", None, route("9", "ivr"), false).is_ok());
        for i in c.plugins.len()..MAX_PLUGINS {
            c.put_plugin(&format!("p{i}"), &json!({}), "x".into())
                .unwrap();
        }
        assert_eq!(
            c.put_plugin("one-more", &json!({}), "x".into()),
            Err(CatalogError::TooMany(MAX_PLUGINS, "plugins"))
        );
    }

    #[test]
    fn kept_changes_replay_to_the_same_table() {
        let mut live = base();
        let mut kept = Changes::default();
        let deployed = |n: &str| PathBuf::from(format!("/data/plugins/{n}.wasm"));
        let settings = json!({ "grants": ["kv"], "config": { "greeting": "hi" } });
        live.put_plugin("biz", &settings, deployed("biz")).unwrap();
        kept.record(Change::PutPlugin {
            name: "biz".into(),
            settings,
        });
        let body = json!({ "number": "700", "plugin": "biz", "max_calls": 5 });
        let r = Catalog::parse_route("biz", &body).unwrap();
        live.put_route("biz", Some("rest"), r, true).unwrap();
        kept.record(Change::PutRoute {
            id: "biz".into(),
            before: Some("rest".into()),
            route: body,
        });
        live.delete_route("100~2").unwrap();
        kept.record(Change::DeleteRoute { id: "100~2".into() });
        // Replaced in place: kept with where it stands now.
        let body = json!({ "number": "701", "plugin": "biz" });
        let next = live.next_route_id("biz");
        live.put_route(
            "biz",
            None,
            Catalog::parse_route("biz", &body).unwrap(),
            true,
        )
        .unwrap();
        kept.record(Change::PutRoute {
            id: "biz".into(),
            before: next,
            route: body,
        });
        assert_eq!(kept.changes.len(), 3, "one change per route or plugin");

        let text = serde_json::to_string(&kept).unwrap();
        let kept: Changes = serde_json::from_str(&text).unwrap();
        let mut replayed = base();
        for c in &kept.changes {
            replayed.apply(c, deployed).unwrap();
        }
        assert_eq!(ids(&replayed), ids(&live));
        assert_eq!(replayed.route("biz").unwrap().route.number, "701");
        let p = replayed.plugin("biz").unwrap();
        assert_eq!(p.grants, ["kv"]);
        assert_eq!(p.path, deployed("biz"));
        assert_eq!(p.config["greeting"].as_str(), Some("hi"));
    }
}
