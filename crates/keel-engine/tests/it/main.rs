//! keel-engine's integration tests, in one binary: demo accounts turned
//! into engine input (`common`); evaluation as of a date sees nothing later
//! (`as_of`); every built-in metric against a hand-worked fixture
//! (`metrics`); what `Plan::needs` cuts changes no metric (`needs`); the
//! default health model separates churners on the demo world
//! (`separation`); `signals` agrees with the full evaluation (`signals`).

mod common;

mod as_of;
mod incremental;
mod metrics;
mod needs;
mod separation;
mod signals;
