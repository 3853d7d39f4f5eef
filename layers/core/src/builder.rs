//! [`Built`]: the one state pattern of every layer builder.
//!
//! A layer holds its settings, and whatever it builds from them for its services (limiters,
//! metric handles, a resolved policy), in one [`Built<Config, State>`]:
//!
//! - the settings live in an `Arc<Config>`: cloning the layer is cheap, and a builder method
//!   changes them only through [`config_mut`](Built::config_mut), which copies them first
//!   when another clone shares them (`Arc::make_mut`), so a builder call on a clone never
//!   reaches the original;
//! - the state is built once, from the settings, by the first
//!   [`get_or_build`](Built::get_or_build) (the layer's first `layer()` call), and shared by
//!   every clone of the layer that shares the settings it was built from;
//! - [`config_mut`](Built::config_mut) is the one place that drops what was built: a builder
//!   call after `layer()` takes effect for the services made afterwards, and no builder method
//!   can forget to reset the state.
//!
//! A layer with nothing to build uses `Built<Config, ()>`, or keeps the convention by hand: an
//! `Arc<Config>` changed only through one `fn config_mut(&mut self) -> &mut Config` that calls
//! `Arc::make_mut`.
//!
//! ```
//! use std::sync::Arc;
//! use tonic_blueprint_core::builder::Built;
//!
//! #[derive(Clone, Default)]
//! struct Config {
//!     limit: u32,
//! }
//!
//! /// What the services share, built from the settings.
//! struct Limiter {
//!     limit: u32,
//! }
//!
//! #[derive(Clone, Default)]
//! struct LimitLayer {
//!     state: Built<Config, Limiter>,
//! }
//!
//! impl LimitLayer {
//!     fn limit(mut self, limit: u32) -> Self {
//!         self.state.config_mut().limit = limit;
//!         self
//!     }
//!
//!     /// What `Layer::layer` hands each service.
//!     fn limiter(&self) -> Arc<Limiter> {
//!         self.state
//!             .get_or_build(|config| Limiter { limit: config.limit })
//!             .clone()
//!     }
//! }
//!
//! let layer = LimitLayer::default().limit(10);
//! let first = layer.limiter();
//! // Every clone of the built layer shares what it built.
//! assert!(Arc::ptr_eq(&first, &layer.clone().limiter()));
//! // A builder call afterwards takes effect for the services made afterwards.
//! let changed = layer.clone().limit(20);
//! assert_eq!(changed.limiter().limit, 20);
//! // ... and never reaches the layer it was cloned from.
//! assert!(Arc::ptr_eq(&first, &layer.limiter()));
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A layer's settings (`Config`) and the state its services share (`State`), built from the
/// settings on first use; see the [module docs](self).
pub struct Built<Config, State> {
    config: Arc<Config>,
    built: Arc<OnceLock<Arc<State>>>,
}

impl<Config, State> Built<Config, State> {
    /// The settings, nothing built yet.
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
            built: Arc::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state, built from the settings by `build` on the first call, then shared by every
    /// clone made from this value (until one of them calls [`config_mut`](Self::config_mut)).
    pub fn get_or_build(&self, build: impl FnOnce(&Config) -> State) -> &Arc<State> {
        self.built.get_or_init(|| Arc::new(build(&self.config)))
    }

    /// The state, if it has been built (and not dropped by [`config_mut`](Self::config_mut)
    /// since).
    pub fn get(&self) -> Option<&Arc<State>> {
        self.built.get()
    }
}

impl<Config: Clone, State> Built<Config, State> {
    /// The settings, to change: copied first when another clone shares them, and the built
    /// state dropped (this value only: clones made earlier keep theirs), so the next
    /// [`get_or_build`](Self::get_or_build) builds from the changed settings.
    pub fn config_mut(&mut self) -> &mut Config {
        self.built = Arc::default();
        Arc::make_mut(&mut self.config)
    }
}

impl<Config, State> Clone for Built<Config, State> {
    /// Shares the settings and the state (built or still to build).
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            built: Arc::clone(&self.built),
        }
    }
}

impl<Config: Default, State> Default for Built<Config, State> {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl<Config: fmt::Debug, State> fmt::Debug for Built<Config, State> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Built")
            .field("config", &self.config)
            .field("built", &self.get().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Debug, Default, PartialEq)]
    struct Config {
        limit: u32,
    }

    #[derive(Debug)]
    struct State {
        limit: u32,
        build: usize,
    }

    fn build(builds: &AtomicUsize) -> impl FnOnce(&Config) -> State + '_ {
        |config| State {
            limit: config.limit,
            build: builds.fetch_add(1, Ordering::SeqCst),
        }
    }

    #[test]
    fn builds_once_and_clones_share_the_state() {
        let builds = AtomicUsize::new(0);
        let before = Built::<Config, State>::new(Config { limit: 3 });
        assert!(before.get().is_none());
        let early_clone = before.clone();
        let state = before.get_or_build(build(&builds)).clone();
        assert_eq!(state.limit, 3);
        let late_clone = before.clone();
        for layer in [&before, &early_clone, &late_clone] {
            assert!(Arc::ptr_eq(layer.get_or_build(build(&builds)), &state));
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn config_mut_drops_the_state_of_this_value_only() {
        let builds = AtomicUsize::new(0);
        let original = Built::<Config, State>::new(Config { limit: 3 });
        let first = original.get_or_build(build(&builds)).clone();

        let mut changed = original.clone();
        changed.config_mut().limit = 5;
        assert!(changed.get().is_none());
        let second = changed.get_or_build(build(&builds)).clone();
        assert_eq!((second.limit, second.build), (5, 1));

        // The original keeps its settings and its state.
        assert_eq!(original.config(), &Config { limit: 3 });
        assert!(Arc::ptr_eq(original.get_or_build(build(&builds)), &first));
        // Clones of the changed value share its new state.
        assert!(Arc::ptr_eq(
            changed.clone().get_or_build(build(&builds)),
            &second
        ));
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_change_before_building_is_built() {
        let builds = AtomicUsize::new(0);
        let mut layer = Built::<Config, State>::default();
        layer.config_mut().limit = 9;
        assert_eq!(layer.get_or_build(build(&builds)).limit, 9);
        assert_eq!(
            format!("{layer:?}"),
            "Built { config: Config { limit: 9 }, built: true }"
        );
    }
}
