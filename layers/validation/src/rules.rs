//! The rules of each method: the `buf.validate` annotations of its request type, evaluated
//! by prost-protovalidate, plus the custom rules registered in Rust.

use crate::compiled::{Compiled, Verdict};
use crate::handover::Handover;
use crate::violation::{Violations, plain};
use bytes::Bytes;
use prost_protovalidate::{Error as EngineError, Validator};
use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, MessageDescriptor, ReflectMessage, Value,
};
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::Arc;
use tonic::{Code, Status};
use tonic_blueprint_core::catalogue::{Lang, Text, rule_description};

/// A rule written in Rust, registered per method, for what annotations cannot say (a check
/// against configuration, across fields in ways CEL makes awkward, ...). It runs after the
/// annotations and adds to the same list.
pub trait Validate: Send + Sync + 'static {
    /// Adds the violations of `message` (the decoded request) to `violations`.
    fn validate(&self, message: &DynamicMessage, violations: &mut Violations);
}

impl<F> Validate for F
where
    F: Fn(&DynamicMessage, &mut Violations) + Send + Sync + 'static,
{
    fn validate(&self, message: &DynamicMessage, violations: &mut Violations) {
        self(message, violations)
    }
}

/// A [`Validate`] on the generated type `M`: `typed(|req: &CreatePaymentRequest, v| ...)`.
pub fn typed<M, F>(rule: F) -> impl Validate
where
    M: prost::Message + Default + 'static,
    F: Fn(&M, &mut Violations) + Send + Sync + 'static,
{
    Typed {
        rule,
        _message: PhantomData::<fn() -> M>,
    }
}

struct Typed<M, F> {
    rule: F,
    _message: PhantomData<fn() -> M>,
}

impl<M, F> Validate for Typed<M, F>
where
    M: prost::Message + Default + 'static,
    F: Fn(&M, &mut Violations) + Send + Sync + 'static,
{
    fn validate(&self, message: &DynamicMessage, violations: &mut Violations) {
        match message.transcode_to::<M>() {
            Ok(typed) => (self.rule)(&typed, violations),
            Err(_) => violations.add("", "message.type", Text::UndecodableMessage),
        }
    }
}

/// What is checked for one method.
#[derive(Clone)]
pub(crate) struct MethodRules {
    pub(crate) input: MessageDescriptor,
    pub(crate) client_streaming: bool,
    /// Whether the request type (or a message inside it) carries annotations.
    pub(crate) annotated: bool,
    pub(crate) custom: Vec<Arc<dyn Validate>>,
    /// The request type's compiled rules, when registered: they replace the engine's
    /// evaluation of valid messages.
    pub(crate) compiled: Option<Arc<dyn Compiled>>,
}

impl MethodRules {
    /// Whether a message of this method needs decoding at all.
    pub(crate) fn checks_messages(&self) -> bool {
        self.annotated || !self.custom.is_empty()
    }

    /// Decodes `bytes` and adds every violation to `violations`. A message that does not
    /// decode is refused outright; so is an engine failure (as INTERNAL, detail in the logs).
    pub(crate) fn check(
        &self,
        validator: &Validator,
        bytes: Bytes,
        violations: &mut Violations,
    ) -> Result<(), Status> {
        let lang = violations.lang();
        let undecodable = || plain(Code::InvalidArgument, Text::UndecodableMessage, lang);
        // Compiled rules stand in for the engine, which then only explains their refusals.
        let run_engine = match &self.compiled {
            Some(compiled) => {
                match compiled.check(&bytes) {
                    Verdict::Valid => {}
                    Verdict::Undecodable => return Err(undecodable()),
                    Verdict::Invalid(found) => {
                        self.explain(validator, bytes.clone(), found, violations)?;
                    }
                }
                false
            }
            None => self.annotated,
        };
        if self.custom.is_empty() {
            if run_engine {
                // Only the engine reads the message: hand it over rather than have it cloned.
                let message = DynamicMessage::decode(self.input.clone(), bytes.clone())
                    .map_err(|_| undecodable())?;
                let handover = Handover::new(self.input.clone(), bytes, message);
                self.run_engine(validator, &handover, violations)?;
            }
            return Ok(());
        }
        let message =
            DynamicMessage::decode(self.input.clone(), bytes).map_err(|_| undecodable())?;
        if run_engine {
            self.run_engine(validator, &message, violations)?;
        }
        for rule in &self.custom {
            rule.validate(&message, violations);
        }
        Ok(())
    }

    /// The violations of a message the compiled rules refused (`found`), as the engine
    /// reports them: the same list, with the rule values the localized descriptions need.
    /// Should the engine find nothing, the compiled rules' own violations are the answer.
    fn explain(
        &self,
        validator: &Validator,
        bytes: Bytes,
        found: Vec<prost_protovalidate::Violation>,
        violations: &mut Violations,
    ) -> Result<(), Status> {
        let before = violations.as_slice().len();
        if let Ok(message) = DynamicMessage::decode(self.input.clone(), bytes.clone()) {
            let handover = Handover::new(self.input.clone(), bytes, message);
            self.run_engine(validator, &handover, violations)?;
        }
        if violations.as_slice().len() == before {
            // The compiled rules carry no rule values to localize with: their own text.
            for v in &found {
                let text = if v.message().is_empty() {
                    v.rule_id()
                } else {
                    v.message()
                };
                violations.add(v.field_path(), v.rule_id(), text.to_owned());
            }
        }
        Ok(())
    }

    /// The `buf.validate` rules on `message`.
    fn run_engine<M: ReflectMessage>(
        &self,
        validator: &Validator,
        message: &M,
        violations: &mut Violations,
    ) -> Result<(), Status> {
        let lang = violations.lang();
        match validator.validate(message) {
            Ok(()) => Ok(()),
            Err(EngineError::Validation(found)) => {
                for v in found.violations() {
                    violations.add(v.field_path(), v.rule_id(), |lang: Lang| describe(v, lang));
                }
                Ok(())
            }
            Err(other) => {
                tracing::error!(error = %other, message = self.input.full_name(), "validation rules failed to run");
                Err(plain(Code::Internal, Text::Internal, lang))
            }
        }
    }
}

/// The description of `v` in `lang`: the catalogue's translation of its rule, else (and in
/// English) the engine's own text.
fn describe(v: &prost_protovalidate::Violation, lang: Lang) -> String {
    let value = || v.rule_value().map(value_text).unwrap_or_default();
    (lang != Lang::En)
        .then(|| rule_description(v.rule_id(), &value(), lang))
        .flatten()
        .or_else(|| (!v.message().is_empty()).then(|| v.message().to_owned()))
        .unwrap_or_else(|| v.rule_id().to_owned())
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::EnumNumber(n) => n.to_string(),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        _ => String::new(),
    }
}

/// The three annotation extensions, when the pool has `buf/validate/validate.proto`.
pub(crate) struct Extensions {
    field: ExtensionDescriptor,
    message: Option<ExtensionDescriptor>,
    oneof: Option<ExtensionDescriptor>,
}

pub(crate) const VALIDATE_PROTO: &str = "buf/validate/validate.proto";

impl Extensions {
    pub(crate) fn of(pool: &DescriptorPool) -> Option<Self> {
        Some(Self {
            field: pool.get_extension_by_name("buf.validate.field")?,
            message: pool.get_extension_by_name("buf.validate.message"),
            oneof: pool.get_extension_by_name("buf.validate.oneof"),
        })
    }

    /// Whether `message`, or a message type reachable from its fields, is annotated.
    pub(crate) fn annotated(&self, message: &MessageDescriptor) -> bool {
        let mut seen = HashSet::new();
        self.reaches_rules(message, &mut seen)
    }

    fn reaches_rules(&self, message: &MessageDescriptor, seen: &mut HashSet<String>) -> bool {
        if !seen.insert(message.full_name().to_owned()) {
            return false;
        }
        if self.on_message(message) {
            return true;
        }
        message.fields().any(|field| match field.kind() {
            prost_reflect::Kind::Message(inner) => self.reaches_rules(&inner, seen),
            _ => false,
        })
    }

    /// Whether `message` itself (its options, oneofs or fields) carries an annotation.
    pub(crate) fn on_message(&self, message: &MessageDescriptor) -> bool {
        let has = |options: DynamicMessage, ext: &ExtensionDescriptor| options.has_extension(ext);
        self.message
            .as_ref()
            .is_some_and(|ext| has(message.options(), ext))
            || self
                .oneof
                .as_ref()
                .is_some_and(|ext| message.oneofs().any(|o| has(o.options(), ext)))
            || message.fields().any(|f| has(f.options(), &self.field))
    }
}
