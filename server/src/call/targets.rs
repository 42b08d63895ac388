//! Whom a dial rings: targets (extensions, ring groups, URIs, numbers)
//! resolved into the contacts the ringer rings and when each one's turn
//! comes: a group's members by its strategy, a key client's manager first,
//! an extension's phones and browser, a number's trunks in failover order.

use std::time::Duration;

use super::error::Error;
use super::ringer::{Plan, Slot, AT_ONCE};
use super::route::{uri_dest, Reach, Route};
use super::Node;
use crate::config::RingStrategy;
use crate::sip::message;

/// Whom to call.
#[derive(Debug, Clone)]
pub enum Target {
    Extension(String),
    Uri(String),
    /// A phone number, out through the configured trunks in order.
    Number(String),
    /// A phone number through one named trunk.
    Trunk {
        trunk: String,
        number: String,
    },
}

/// Where an extension rings: every registered contact, and its browser if
/// one is logged in.
pub(super) fn extension_routes(node: &Node, user: &str, now_unix: u64) -> Vec<Route> {
    let bindings = node
        .registrar
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .lookup(user, now_unix);
    let direct = Route::direct;
    let mut routes: Vec<Route> = bindings
        .into_iter()
        .map(|b| direct(b.contact, b.source))
        .collect();
    if node.webrtc.agents.is_online(user) {
        routes.push(Route::browser(user));
    }
    routes
}

/// A dial string from config: `tel:<number>`, `sip:<uri>`, else an extension or group.
pub fn parse_target(s: &str) -> Target {
    if s.starts_with("sip:") {
        Target::Uri(s.to_string())
    } else if let Some(number) = s.strip_prefix("tel:") {
        Target::Number(number.to_string())
    } else {
        Target::Extension(s.to_string())
    }
}

/// A number's routes: every trunk (or the one named), in failover order.
fn trunk_routes(node: &Node, number: &str, only: Option<&str>) -> Vec<Route> {
    node.config
        .trunks
        .iter()
        .filter(|t| only.is_none_or(|n| n == t.name))
        .map(|t| Route {
            reach: Reach::Sip {
                uri: format!("sip:{}{number}@{}", t.prefix, t.address),
                dest: t.address,
            },
            auth: t.username.clone().zip(t.password.clone()),
            caller_id: t.caller_id.clone(),
            via: Some(t.name.clone()),
        })
        .collect()
}

/// A group member's devices, each with its routes in failover order: an
/// extension's registered phones and browser, a `sip:` URI, or a `tel:`
/// number out through the trunks. Its name for records and presence.
pub(crate) fn member_devices(
    node: &Node,
    member: &str,
    now_unix: u64,
) -> (String, Vec<Vec<Route>>) {
    if let Some(number) = member.strip_prefix("tel:") {
        let routes = trunk_routes(node, number, None);
        let devices = if routes.is_empty() {
            vec![]
        } else {
            vec![routes]
        };
        return (number.to_string(), devices);
    }
    if member.starts_with("sip:") {
        let devices = uri_dest(member)
            .map(|dest| vec![vec![Route::direct(member.to_string(), dest)]])
            .unwrap_or_default();
        return (message::user_of(member).to_string(), devices);
    }
    let devices = extension_routes(node, member, now_unix)
        .into_iter()
        .map(|r| vec![r])
        .collect();
    (member.to_string(), devices)
}

/// Every contact `targets` ring, in order, with its turn. `caller` picks a
/// key client's personal manager; `ready` says whether an agent is free for
/// a group's call now (the ringer asks again at each turn); `mark` records
/// the route steps (`group:…`, `manager:…`).
pub(super) fn plans(
    node: &Node,
    targets: &[Target],
    caller: &str,
    ready: &dyn Fn(&str) -> bool,
    mark: &mut dyn FnMut(String),
) -> Result<Vec<Plan>, Error> {
    let now_unix = crate::store::now_ms() as u64 / 1000;
    let mut plans: Vec<Plan> = Vec::new();
    let at_once = |target: u32, label: &str, routes: Vec<Route>, agent: bool| Plan {
        target,
        label: label.to_string(),
        routes: routes.into(),
        slot: AT_ONCE,
        agent,
        group: None,
    };
    for (i, t) in (0u32..).zip(targets) {
        match t {
            Target::Extension(name) if node.config.group(name).is_some() => {
                let Some(group) = node.config.group(name) else {
                    continue;
                };
                mark(format!("group:{}:{}", group.name, group.strategy.as_str()));
                // Agents not free now are left out and turns are counted over
                // those who can ring; the ringer asks again at each turn.
                let step = Duration::from_secs(group.step_s);
                // A key client's personal manager, if free, has the first turn alone.
                let manager = group
                    .managers
                    .get(caller)
                    .map(|m| member_devices(node, m, now_unix))
                    .filter(|(m, devices)| !devices.is_empty() && ready(m));
                let head_start = if manager.is_some() {
                    step
                } else {
                    Duration::ZERO
                };
                let manager_name = manager.as_ref().map(|(m, _)| m.clone());
                if let Some((m, devices)) = manager {
                    mark(format!("manager:{m}"));
                    for routes in devices {
                        plans.push(Plan {
                            slot: Slot {
                                start: Duration::ZERO,
                                stop: Some(step),
                            },
                            group: Some(group.name.clone()),
                            ..at_once(i, &m, routes, true)
                        });
                    }
                }
                let reachable: Vec<(String, Vec<Vec<Route>>)> = node
                    .presence
                    .ring_order(&group.members, group.strategy, group.rank)
                    .into_iter()
                    .map(|m| member_devices(node, &m, now_unix))
                    .filter(|(m, devices)| !devices.is_empty() && Some(m) != manager_name.as_ref())
                    .collect();
                let last = reachable.len().saturating_sub(1) as u32;
                for (turn, (member, devices)) in (0u32..).zip(reachable) {
                    let slot = match group.strategy {
                        RingStrategy::All => Slot {
                            start: head_start,
                            stop: None,
                        },
                        RingStrategy::Cascade => Slot {
                            start: head_start + step * turn,
                            stop: None,
                        },
                        // The last agent rings until the dial's time is up.
                        RingStrategy::InTurn | RingStrategy::Uniform => Slot {
                            start: head_start + step * turn,
                            stop: (turn < last).then(|| head_start + step * (turn + 1)),
                        },
                    };
                    for routes in devices {
                        plans.push(Plan {
                            slot,
                            group: Some(group.name.clone()),
                            ..at_once(i, &member, routes, true)
                        });
                    }
                }
            }
            Target::Extension(user) => {
                for route in extension_routes(node, user, now_unix) {
                    plans.push(at_once(i, user, vec![route], true));
                }
            }
            Target::Uri(uri) => match uri_dest(uri) {
                Some(dest) => {
                    let label = message::user_of(uri).to_string();
                    plans.push(at_once(
                        i,
                        &label,
                        vec![Route::direct(uri.clone(), dest)],
                        false,
                    ));
                }
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "not a SIP URI with a numeric host: {uri}"
                    )))
                }
            },
            Target::Number(number) | Target::Trunk { number, .. } => {
                let valid = !number.is_empty()
                    && number
                        .chars()
                        .all(|c| c.is_ascii_digit() || "+*#".contains(c));
                if !valid {
                    return Err(Error::InvalidArgument(format!(
                        "not a phone number: {number:?}"
                    )));
                }
                let only = match t {
                    Target::Trunk { trunk, .. } => {
                        if !node.config.trunks.iter().any(|x| &x.name == trunk) {
                            return Err(Error::InvalidArgument(format!(
                                "no trunk named {trunk:?}"
                            )));
                        }
                        Some(trunk.as_str())
                    }
                    _ => None,
                };
                let routes = trunk_routes(node, number, only);
                if !routes.is_empty() {
                    plans.push(at_once(i, number, routes, false));
                }
            }
        }
    }
    Ok(plans)
}

/// How a dial names its targets in the call record (`dial:201,sales`).
pub(super) fn label(targets: &[Target]) -> String {
    let names: Vec<String> = targets
        .iter()
        .map(|t| match t {
            Target::Extension(e) => e.clone(),
            Target::Uri(u) => message::user_of(u).to_string(),
            Target::Number(n) | Target::Trunk { number: n, .. } => n.clone(),
        })
        .collect();
    names.join(",")
}
