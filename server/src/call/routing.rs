//! The route table calls are routed by, swappable while calls run: a call
//! holds the `Arc<Route>` it was admitted on, so a route changed or removed
//! over the API lets calls in progress finish on what they started with,
//! and their places are given back to the right count. A route replaced
//! under the same id keeps its count (calls on the old version still count
//! against the new `max_calls`).

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::admission::{Admission, Refusal};
use crate::config::catalog::Catalog;
use crate::config::{CallKey, PluginConfig, RouteConfig};

/// A route in force, with its calls-at-once and calls-per-second count.
#[derive(Debug)]
pub struct Route {
    pub id: String,
    pub config: RouteConfig,
    admission: Arc<Mutex<Admission>>,
}

impl Route {
    pub(super) fn admit(&self, now: Instant) -> Result<(), Refusal> {
        lock(&self.admission).admit(now)
    }

    pub(super) fn release(&self) {
        lock(&self.admission).release()
    }

    /// Calls on this route now.
    pub fn active(&self) -> usize {
        lock(&self.admission).active()
    }
}

/// What new calls are routed by now.
#[derive(Debug, Default)]
pub struct Table {
    pub catalog: Catalog,
    pub routes: Vec<Arc<Route>>,
}

impl Table {
    /// The first route matching a call (number, caller, domain, time).
    pub fn route_for(&self, key: &CallKey) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| r.config.matches_call(key))
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.catalog.plugin(name)
    }
}

/// The live table; changed only through [`Routing::swap`].
#[derive(Debug, Default)]
pub struct Routing {
    table: RwLock<Arc<Table>>,
}

impl Routing {
    pub fn new(catalog: Catalog) -> Routing {
        let r = Routing::default();
        r.swap(catalog);
        r
    }

    /// The table now (new calls after this see a later swap; this one does not change).
    pub fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `catalog` in force. Routes keep their counts by id; a route
    /// that is new starts at zero with its own limits.
    pub fn swap(&self, catalog: Catalog) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        let routes = catalog
            .routes
            .iter()
            .map(|named| {
                let (max_calls, max_cps) = (named.route.max_calls, named.route.max_cps);
                let admission = match table.routes.iter().find(|r| r.id == named.id) {
                    Some(old) => {
                        lock(&old.admission).set_limits(max_calls, max_cps);
                        old.admission.clone()
                    }
                    None => Arc::new(Mutex::new(Admission::new(max_calls, max_cps))),
                };
                Arc::new(Route {
                    id: named.id.clone(),
                    config: named.route.clone(),
                    admission,
                })
            })
            .collect();
        *table = Arc::new(Table { catalog, routes });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn catalog(max_calls: usize) -> Catalog {
        let c = Config::parse(&format!(
            "[[plugins]]\nname = \"ivr\"\npath = \"x.wasm\"\n\
             [[routes]]\nnumber = \"100\"\nplugin = \"ivr\"\nmax_calls = {max_calls}\n"
        ))
        .unwrap();
        Catalog::from_config(&c)
    }

    fn key(callee: &str) -> CallKey<'_> {
        CallKey {
            callee,
            caller: "1",
            domain: "d",
            now_s: 0,
        }
    }

    #[test]
    fn a_replaced_route_keeps_its_count_and_a_removed_one_frees_into_nothing() {
        let routing = Routing::new(catalog(1));
        let now = Instant::now();
        let held = routing.table().route_for(&key("100")).unwrap().clone();
        held.admit(now).unwrap();
        // Changed over the API while the call runs: still full.
        routing.swap(catalog(1));
        let new = routing.table().route_for(&key("100")).unwrap().clone();
        assert_eq!(new.admit(now), Err(Refusal::Full));
        // Raised: one more fits.
        routing.swap(catalog(2));
        assert!(routing.table().routes[0].admit(now).is_ok());
        // The first call ends on the version it started with; the count is shared.
        held.release();
        assert_eq!(routing.table().routes[0].active(), 1);
        // Removed: calls on it still give their places back, to nothing.
        routing.swap(Catalog::default());
        assert!(routing.table().route_for(&key("100")).is_none());
        new.release();
    }
}
