//! The layer: rules compiled from the descriptors when it is built.

use crate::compiled::{Compiled, CompiledFor};
use crate::metadata::MetadataRule;
use crate::rules::{Extensions, MethodRules, VALIDATE_PROTO, Validate};
use crate::service::RequestValidation;
use prost_protovalidate::{Error as EngineError, Validator};
use prost_reflect::{DescriptorPool, DynamicMessage};
use std::sync::Arc;
use tonic_blueprint_core::{MethodCounters, MethodPolicy, MethodRegistry, names};
use tower_layer::Layer;

/// Requests above this many bytes (after decompression) are refused: tonic's own default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

const COUNTERS: [&str; 1] = [names::VALIDATION_FAILURES];

/// Why the layer could not be built: each problem, all at once.
#[derive(Debug)]
pub struct BuildError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request validation cannot start: {}",
            self.problems.join("; ")
        )
    }
}

impl std::error::Error for BuildError {}

impl BuildError {
    fn one(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) methods: tonic_blueprint_core::PathMap<Arc<MethodRules>>,
    pub(crate) validator: Arc<Validator>,
    pub(crate) max_message_bytes: usize,
    pub(crate) metadata: MethodPolicy<Arc<[MetadataRule]>>,
    pub(crate) counters: Arc<MethodCounters>,
}

/// Validates requests before the handler; see the [crate docs](crate).
#[derive(Clone)]
pub struct RequestValidationLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RequestValidationLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut methods: Vec<_> = self.shared.methods.keys().collect();
        methods.sort();
        f.debug_struct("RequestValidationLayer")
            .field("methods", &methods)
            .field("max_message_bytes", &self.shared.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl RequestValidationLayer {
    /// The layer for every method in `file_descriptor_set` (the encoded set of your service
    /// and its imports, with extension options kept: protox's
    /// `Compiler::encode_file_descriptor_set`, or `protoc --include_imports -o`).
    ///
    /// Fails, listing every problem, when the set does not decode, when a file imports
    /// `buf/validate/validate.proto` but no annotation survived (the set went through
    /// `prost_types`, which drops extension options: every rule would be skipped), or when
    /// the engine cannot compile a rule (a bad CEL expression, a rule on the wrong type).
    pub fn from_descriptors(file_descriptor_set: &[u8]) -> Result<Self, BuildError> {
        let pool = DescriptorPool::decode(file_descriptor_set).map_err(|e| {
            BuildError::one(format!("the file descriptor set does not decode: {e}"))
        })?;
        let extensions = Extensions::of(&pool);
        let mut problems = Vec::new();
        for file in pool.files() {
            let imports_rules = file.dependencies().any(|d| d.name() == VALIDATE_PROTO);
            if !imports_rules {
                continue;
            }
            let kept = extensions.as_ref().is_some_and(|ext| {
                file.messages()
                    .any(|m| ext.on_message(&m) || nested(&m, ext))
            });
            if !kept {
                problems.push(format!(
                    "{} imports {VALIDATE_PROTO} but carries no rule: the descriptor set lost \
                     its extension options (encode it with protox's \
                     Compiler::encode_file_descriptor_set, not through prost_types)",
                    file.name()
                ));
            }
        }
        let validator = Arc::new(Validator::new());
        let mut methods = tonic_blueprint_core::PathMap::default();
        for service in pool.services() {
            for method in service.methods() {
                let input = method.input();
                let annotated = extensions.as_ref().is_some_and(|ext| ext.annotated(&input));
                if annotated
                    && let Err(EngineError::Compilation(e)) =
                        validator.validate(&DynamicMessage::new(input.clone()))
                {
                    problems.push(format!(
                        "the rules of {} (request of {}/{}) do not compile: {}",
                        input.full_name(),
                        service.full_name(),
                        method.name(),
                        e.cause
                    ));
                }
                methods.insert(
                    format!("/{}/{}", service.full_name(), method.name()).into_boxed_str(),
                    Arc::new(MethodRules {
                        input,
                        client_streaming: method.is_client_streaming(),
                        annotated,
                        custom: Vec::new(),
                        compiled: None,
                    }),
                );
            }
        }
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        let registry = MethodRegistry::from_file_descriptor_set(file_descriptor_set).ok();
        Ok(Self {
            shared: Arc::new(Shared {
                methods,
                validator,
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
                metadata: MethodPolicy::new(Arc::from(Vec::new())),
                counters: Arc::new(MethodCounters::new(&COUNTERS, registry)),
            }),
        })
    }

    /// Adds a rule written in Rust to `method` (`pkg.Service/Method`); it runs after the
    /// annotations. Fails when the descriptors have no such method.
    pub fn with_rule(mut self, method: &str, rule: impl Validate) -> Result<Self, BuildError> {
        let path = format!("/{}", method.trim_start_matches('/'));
        let shared = Arc::make_mut(&mut self.shared);
        let rules = shared
            .methods
            .get_mut(path.as_str())
            .ok_or_else(|| BuildError::one(format!("no method {method:?} in the descriptors")))?;
        Arc::make_mut(rules).custom.push(Arc::new(rule));
        Ok(self)
    }

    /// Checks the requests of type `M` with its compiled rules: the
    /// `impl prost_protovalidate::Validate` that
    /// [prost-protovalidate-build](https://docs.rs/prost-protovalidate-build) generates for
    /// messages whose rules are all standard (no CEL). A valid request then costs a typed
    /// decode and direct field checks instead of a `DynamicMessage` and the reflection
    /// engine; a refused one is explained by the engine, so refusals are unchanged. Types
    /// with CEL rules get no generated impl and stay on the engine.
    ///
    /// `M` must implement `prost::Name` (prost-build's `enable_type_names()`). Fails when no
    /// method of the descriptors takes `M` as its request.
    ///
    /// ```no_run
    /// # use tonic_blueprint_validation::RequestValidationLayer;
    /// # #[derive(Clone, PartialEq, prost::Message)] struct CreatePaymentRequest {}
    /// # impl prost::Name for CreatePaymentRequest {
    /// #     const NAME: &'static str = "CreatePaymentRequest";
    /// #     const PACKAGE: &'static str = "payments.v1";
    /// # }
    /// # impl prost_protovalidate::Validate for CreatePaymentRequest {
    /// #     fn validate(&self) -> Result<(), prost_protovalidate::ValidationError> { Ok(()) }
    /// # }
    /// # const FILE_DESCRIPTOR_SET: &[u8] = &[];
    /// # fn build() -> Result<(), Box<dyn std::error::Error>> {
    /// // build.rs ran prost_protovalidate_build::Builder over the same descriptor set.
    /// let validation = RequestValidationLayer::from_descriptors(FILE_DESCRIPTOR_SET)?
    ///     .compiled::<CreatePaymentRequest>()?;
    /// # let _ = validation; Ok(()) }
    /// ```
    pub fn compiled<M>(mut self) -> Result<Self, BuildError>
    where
        M: prost::Message + prost::Name + Default + prost_protovalidate::Validate + 'static,
    {
        let full_name = M::full_name();
        let checker: Arc<dyn Compiled> = Arc::new(CompiledFor::<M>::new());
        let shared = Arc::make_mut(&mut self.shared);
        let mut found = false;
        for rules in shared.methods.values_mut() {
            if rules.input.full_name() == full_name {
                Arc::make_mut(rules).compiled = Some(checker.clone());
                found = true;
            }
        }
        if !found {
            return Err(BuildError::one(format!(
                "no method of the descriptors takes {full_name} as its request"
            )));
        }
        Ok(self)
    }

    /// Refuses to build unless every method whose request type has rules (annotations on
    /// it or on a message inside it) has that type's compiled rules registered with
    /// [`compiled`](Self::compiled). Call it after the last `compiled`: a request type added
    /// to the service later without its compiled rules then stops the service at start-up
    /// instead of quietly running on the reflection engine. Request types without rules need
    /// nothing. The error names every such method, with its request type.
    ///
    /// Types with CEL rules get no generated impl: a service that has any cannot require
    /// compiled rules everywhere, and leaves this out.
    ///
    /// ```no_run
    /// # use tonic_blueprint_validation::RequestValidationLayer;
    /// # #[derive(Clone, PartialEq, prost::Message)] struct CreatePaymentRequest {}
    /// # impl prost::Name for CreatePaymentRequest {
    /// #     const NAME: &'static str = "CreatePaymentRequest";
    /// #     const PACKAGE: &'static str = "payments.v1";
    /// # }
    /// # impl prost_protovalidate::Validate for CreatePaymentRequest {
    /// #     fn validate(&self) -> Result<(), prost_protovalidate::ValidationError> { Ok(()) }
    /// # }
    /// # const FILE_DESCRIPTOR_SET: &[u8] = &[];
    /// # fn build() -> Result<(), Box<dyn std::error::Error>> {
    /// let validation = RequestValidationLayer::from_descriptors(FILE_DESCRIPTOR_SET)?
    ///     .compiled::<CreatePaymentRequest>()?
    ///     // Fails, naming the method, if another request type has rules but none compiled.
    ///     .require_compiled()?;
    /// # let _ = validation; Ok(()) }
    /// ```
    pub fn require_compiled(self) -> Result<Self, BuildError> {
        let mut problems: Vec<String> = self
            .shared
            .methods
            .iter()
            .filter(|(_, rules)| rules.annotated && rules.compiled.is_none())
            .map(|(path, rules)| {
                format!(
                    "{} takes {}, which has rules but no compiled rules registered (add \
                     .compiled::<{}>())",
                    path.trim_start_matches('/'),
                    rules.input.full_name(),
                    rules.input.name()
                )
            })
            .collect();
        if problems.is_empty() {
            return Ok(self);
        }
        problems.sort();
        Err(BuildError { problems })
    }

    /// Metadata rules for `methods`: `*` (every method), `pkg.Service/*` or
    /// `pkg.Service/Method`; the most specific entry applies to a call.
    pub fn metadata(
        mut self,
        methods: &str,
        rules: impl IntoIterator<Item = MetadataRule>,
    ) -> Result<Self, BuildError> {
        let rules: Arc<[MetadataRule]> = rules.into_iter().collect();
        let shared = Arc::make_mut(&mut self.shared);
        if methods == "*" {
            shared.metadata.set_default(rules);
        } else {
            shared
                .metadata
                .set(methods, rules)
                .map_err(|e| BuildError::one(e.to_string()))?;
        }
        Ok(self)
    }

    /// Refuses messages above `bytes` (after decompression); default 4 MiB.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_message_bytes = bytes;
        self
    }
}

fn nested(message: &prost_reflect::MessageDescriptor, ext: &Extensions) -> bool {
    message
        .child_messages()
        .any(|m| ext.on_message(&m) || nested(&m, ext))
}

impl<S> Layer<S> for RequestValidationLayer {
    type Service = RequestValidation<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestValidation::from_shared(inner, self.shared.clone())
    }
}
