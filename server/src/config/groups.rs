//! `[[groups]]`: departments whose agents ring by a strategy.

use serde::Deserialize;

/// A department (ring group).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// The group's own extension number (dial it, or its name).
    pub number: Option<String>,
    #[serde(default)]
    pub strategy: RingStrategy,
    /// Extensions (SIP or browser agents); an agent may be in several groups.
    pub members: Vec<String>,
    /// In turn / cascading / uniform: seconds before the next agent rings.
    #[serde(default = "default_step_s")]
    pub step_s: u64,
    /// Personal managers of key clients: caller number -> agent, rung alone
    /// for `step_s` before the group.
    #[serde(default)]
    pub managers: std::collections::BTreeMap<String, String>,
    /// After a call from this group an agent gets no group or queue call
    /// for this long (notes, the CRM).
    #[serde(default)]
    pub wrap_up_s: u64,
    /// `conversion`: agents ring best conversion rate first (department
    /// calls answered against conversions the CRM reports through
    /// `POST /api/agents/{user}/conversions`), instead of list order.
    #[serde(default)]
    pub rank: Rank,
}

/// The order a group's agents take before the strategy applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rank {
    /// As listed in `members`.
    #[default]
    List,
    /// Measured effectiveness: the best conversion rate first.
    Conversion,
}

/// How a group's agents ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RingStrategy {
    /// All at once: the first to answer wins, the others stop ringing.
    #[default]
    All,
    /// The agent idle longest first, then the next, one at a time.
    Uniform,
    /// One at a time in list order, each for `step_s`; the previous stops.
    InTurn,
    /// Like in turn, but earlier agents keep ringing.
    Cascade,
}

impl RingStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            RingStrategy::All => "all",
            RingStrategy::Uniform => "uniform",
            RingStrategy::InTurn => "in-turn",
            RingStrategy::Cascade => "cascade",
        }
    }
}

fn default_step_s() -> u64 {
    5
}
