//! What the service descriptors say about each method.
//!
//! The HTTP/2 request does not say whether a call streams or whether its method is safe to
//! cache; the `.proto` does. [`MethodRegistry`] reads the file descriptor set that
//! tonic-build or protox produce (the same bytes tonic-reflection serves) and answers per
//! method: its [`RpcKind`] and whether it is marked `idempotency_level = NO_SIDE_EFFECTS`.
//! It also tells which paths the server serves, so layers can fold the others into one label.

use crate::identity::PathMap;
use crate::identity::{RpcIdentity, RpcKind};
use prost::Message;
use prost_types::FileDescriptorSet;
use prost_types::method_options::IdempotencyLevel;

/// What the descriptors say about one method.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MethodInfo {
    /// Unary or which kind of streaming.
    pub kind: RpcKind,
    /// Marked `option idempotency_level = NO_SIDE_EFFECTS;`.
    pub no_side_effects: bool,
    /// Fully qualified input message type, without the leading dot.
    pub input_type: String,
    /// Fully qualified output message type, without the leading dot.
    pub output_type: String,
}

/// The methods of one or more services, by path.
///
/// ```
/// use tonic_blueprint_core::{MethodRegistry, RpcIdentity, RpcKind};
///
/// let mut registry = MethodRegistry::default();
/// registry.insert("/shop.v1.Cart/Watch", RpcKind::ServerStreaming);
/// let id = RpcIdentity::parse("/shop.v1.Cart/Watch").unwrap();
/// assert_eq!(registry.kind(&id), RpcKind::ServerStreaming);
/// assert!(!registry.contains(&RpcIdentity::parse("/shop.v1.Cart/Nope").unwrap()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct MethodRegistry {
    methods: PathMap<MethodInfo>,
}

impl MethodRegistry {
    /// Reads an encoded `google.protobuf.FileDescriptorSet` (for example the
    /// `FILE_DESCRIPTOR_SET` constant tonic-build writes for reflection).
    pub fn from_file_descriptor_set(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let mut registry = Self::default();
        registry.add_file_descriptor_set(bytes)?;
        Ok(registry)
    }

    /// Adds every method of an encoded file descriptor set.
    pub fn add_file_descriptor_set(&mut self, bytes: &[u8]) -> Result<(), prost::DecodeError> {
        let set = FileDescriptorSet::decode(bytes)?;
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                let service_name = if package.is_empty() {
                    service.name().to_owned()
                } else {
                    format!("{package}.{}", service.name())
                };
                for method in &service.method {
                    let no_side_effects = method
                        .options
                        .as_ref()
                        .is_some_and(|o| o.idempotency_level() == IdempotencyLevel::NoSideEffects);
                    let info = MethodInfo {
                        kind: RpcKind::from_streaming(
                            method.client_streaming(),
                            method.server_streaming(),
                        ),
                        no_side_effects,
                        input_type: method.input_type().trim_start_matches('.').to_owned(),
                        output_type: method.output_type().trim_start_matches('.').to_owned(),
                    };
                    let path = format!("/{service_name}/{}", method.name());
                    self.methods.insert(path.into(), info);
                }
            }
        }
        Ok(())
    }

    /// Declares one method by path (`/pkg.Service/Method`) and kind.
    pub fn insert(&mut self, path: &str, kind: RpcKind) {
        self.methods.insert(
            path.into(),
            MethodInfo {
                kind,
                no_side_effects: false,
                input_type: String::new(),
                output_type: String::new(),
            },
        );
    }

    /// What the descriptors say about a method, if it is one of theirs.
    pub fn get(&self, id: &RpcIdentity) -> Option<&MethodInfo> {
        self.methods.get(id.path())
    }

    /// Whether the method is known.
    pub fn contains(&self, id: &RpcIdentity) -> bool {
        self.methods.contains_key(id.path())
    }

    /// The method's kind, or [`RpcKind::Unknown`].
    pub fn kind(&self, id: &RpcIdentity) -> RpcKind {
        self.get(id).map_or(RpcKind::Unknown, |m| m.kind)
    }

    /// Every known method, as `(path, info)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MethodInfo)> {
        self.methods.iter().map(|(k, v)| (&**k, v))
    }

    /// Number of known methods.
    pub fn len(&self) -> usize {
        self.methods.len()
    }

    /// Whether no method is known.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }
}
