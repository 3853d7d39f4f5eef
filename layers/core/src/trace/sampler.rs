//! Which traces are recorded: the OpenTelemetry samplers, by their standard names.

use super::ids::TraceId;

/// A sampler, as `OTEL_TRACES_SAMPLER` names them. The default is `parentbased_always_on`:
/// a call whose caller sampled is recorded, one whose caller did not is not, and a new trace
/// is always recorded.
///
/// ```
/// use tonic_blueprint_core::trace::{Sampler, TraceId};
///
/// let sampler = Sampler::from_otel("parentbased_traceidratio", "0.25").unwrap();
/// let id = TraceId::random();
/// assert!(sampler.should_sample(id, Some(true)));   // the caller sampled
/// assert!(!sampler.should_sample(id, Some(false))); // the caller did not
/// assert!(Sampler::from_otel("traceidratio", "2").is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Sampler {
    /// Every span.
    AlwaysOn,
    /// No span.
    AlwaysOff,
    /// A fraction of traces, decided from the trace id alone, so every service that samples
    /// the same ratio agrees (OpenTelemetry's `TraceIdRatioBased` rule).
    TraceIdRatio(f64),
    /// The parent's decision; a new trace always.
    #[default]
    ParentBasedAlwaysOn,
    /// The parent's decision; a new trace never.
    ParentBasedAlwaysOff,
    /// The parent's decision; a new trace by [`TraceIdRatio`](Self::TraceIdRatio).
    ParentBasedTraceIdRatio(f64),
}

impl Sampler {
    /// The sampler named `name` (`OTEL_TRACES_SAMPLER`) with argument `arg`
    /// (`OTEL_TRACES_SAMPLER_ARG`: the ratio of the ratio samplers, 1.0 when empty). An empty
    /// name is the default. An error names what is wrong.
    pub fn from_otel(name: &str, arg: &str) -> Result<Self, String> {
        let ratio = || -> Result<f64, String> {
            let arg = arg.trim();
            if arg.is_empty() {
                return Ok(1.0);
            }
            arg.parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("sampler argument {arg:?} is not a ratio from 0 to 1"))
        };
        Ok(match name.trim() {
            "" | "parentbased_always_on" => Self::ParentBasedAlwaysOn,
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::TraceIdRatio(ratio()?),
            "parentbased_always_off" => Self::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Self::ParentBasedTraceIdRatio(ratio()?),
            other => {
                return Err(format!(
                    "unknown sampler {other:?}: expected always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
                ));
            }
        })
    }

    /// Whether a span of trace `trace_id` is recorded, given its parent's sampled flag
    /// (`None`: a new trace).
    pub fn should_sample(&self, trace_id: TraceId, parent_sampled: Option<bool>) -> bool {
        match (self, parent_sampled) {
            (Self::AlwaysOn, _) => true,
            (Self::AlwaysOff, _) => false,
            (Self::TraceIdRatio(ratio), _) => by_ratio(trace_id, *ratio),
            (_, Some(sampled)) => sampled,
            (Self::ParentBasedAlwaysOn, None) => true,
            (Self::ParentBasedAlwaysOff, None) => false,
            (Self::ParentBasedTraceIdRatio(ratio), None) => by_ratio(trace_id, *ratio),
        }
    }
}

/// OpenTelemetry's rule: the trace id's low 8 bytes, shifted right once, below
/// `ratio * 2^63`.
fn by_ratio(trace_id: TraceId, ratio: f64) -> bool {
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    let bound = (ratio.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64;
    (u64::from_be_bytes(low) >> 1) < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arguments() {
        assert_eq!(Sampler::from_otel("", ""), Ok(Sampler::ParentBasedAlwaysOn));
        assert_eq!(
            Sampler::from_otel("traceidratio", ""),
            Ok(Sampler::TraceIdRatio(1.0))
        );
        assert_eq!(
            Sampler::from_otel("parentbased_traceidratio", "0.5"),
            Ok(Sampler::ParentBasedTraceIdRatio(0.5))
        );
        assert!(Sampler::from_otel("sometimes", "").is_err());
        assert!(Sampler::from_otel("traceidratio", "-0.1").is_err());
        assert!(Sampler::from_otel("traceidratio", "half").is_err());
    }

    #[test]
    fn ratio_samples_about_its_share_and_agrees_with_itself() {
        let sampler = Sampler::TraceIdRatio(0.25);
        let ids: Vec<TraceId> = (0..4000).map(|_| TraceId::random()).collect();
        let sampled = ids
            .iter()
            .filter(|id| sampler.should_sample(**id, None))
            .count();
        assert!((800..1200).contains(&sampled), "{sampled}");
        for id in &ids {
            assert_eq!(
                sampler.should_sample(*id, None),
                sampler.should_sample(*id, Some(false))
            );
        }
        assert!(!Sampler::TraceIdRatio(0.0).should_sample(ids[0], None));
        assert!(Sampler::TraceIdRatio(1.0).should_sample(ids[0], None));
    }

    #[test]
    fn parent_based_follows_the_parent() {
        let id = TraceId::random();
        for sampler in [
            Sampler::ParentBasedAlwaysOn,
            Sampler::ParentBasedAlwaysOff,
            Sampler::ParentBasedTraceIdRatio(0.0),
        ] {
            assert!(sampler.should_sample(id, Some(true)));
            assert!(!sampler.should_sample(id, Some(false)));
        }
        assert!(Sampler::ParentBasedAlwaysOn.should_sample(id, None));
        assert!(!Sampler::ParentBasedAlwaysOff.should_sample(id, None));
        assert!(Sampler::AlwaysOn.should_sample(id, Some(false)));
        assert!(!Sampler::AlwaysOff.should_sample(id, Some(true)));
    }
}
