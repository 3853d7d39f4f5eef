//! The error catalogue: every message a blueprint layer sends to a client, in English and
//! Spanish, and the statuses built from it after Google's error model (AIP-193).
//!
//! A status's `grpc-message` is for developers: always English. The caller's language, read
//! from `grpc-accept-language`, then `accept-language` ([`Lang::from_headers`]), gets the text
//! in a `google.rpc.LocalizedMessage` detail (locale = the BCP 47 tag), next to the status's
//! other details in `grpc-status-details-bin`, whose `google.rpc.Status` carries the same code
//! and message as the headers. An English caller gets no LocalizedMessage.
//!
//! Messages say what was wrong with the request, never anything about the server: no panic
//! text, SQL, backend error or address ever goes into one. Layers capture the caller's
//! [`Lang`] when the call arrives and build the status with [`status`] (or, with details of
//! their own such as BadRequest or RetryInfo, [`status_with_details`]) when they answer.
//!
//! The catalogue is open: a service declares its own texts as [`Message`]s (a key, the
//! English text, its translations), lists them in a [`Catalogue`] that a test checks, and
//! builds its statuses the same way.
//!
//! ```
//! use tonic::Code;
//! use tonic_blueprint_core::catalogue::{self, Catalogue, Lang, Message, Text};
//! use tonic_types::StatusExt;
//!
//! let mut metadata = http::HeaderMap::new();
//! metadata.insert("accept-language", "es-MX,es;q=0.9,en;q=0.5".parse().unwrap());
//! let lang = Lang::from_headers(&metadata);
//! assert_eq!(lang, Lang::Es);
//! assert_eq!(Text::DeadlineExceeded.text(lang), "plazo excedido");
//!
//! // grpc-message in English, the caller's language in a LocalizedMessage.
//! let status = catalogue::status(Code::DeadlineExceeded, Text::DeadlineExceeded, lang);
//! assert_eq!(status.message(), "deadline exceeded");
//! let localized = status.get_details_localized_message().unwrap();
//! assert_eq!(localized.locale, "es");
//! assert_eq!(localized.message, "plazo excedido");
//!
//! // A service's own messages, built the same way.
//! const NOT_FOUND: Message =
//!     Message::new("payments.not_found", "payment not found").es("pago no encontrado");
//! const PAYMENTS: Catalogue = Catalogue::new(&[NOT_FOUND]);
//! assert_eq!(PAYMENTS.check(), Ok(()));
//! let status = catalogue::status(Code::NotFound, NOT_FOUND, Lang::Es);
//! assert_eq!(status.message(), "payment not found");
//! assert_eq!(status.get_details_localized_message().unwrap().message, "pago no encontrado");
//! // An English caller: the message alone, no details.
//! assert!(catalogue::status(Code::NotFound, NOT_FOUND, Lang::En).details().is_empty());
//! ```

use http::HeaderMap;
use std::borrow::Cow;
use std::fmt;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, LocalizedMessage, StatusExt};

/// tonic-types, whose [`ErrorDetails`] the status builders take and
/// whose `StatusExt` reads the details back (`get_details_localized_message`).
pub use tonic_types;

/// A language the catalogue speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// English, the default.
    #[default]
    En,
    /// Spanish.
    Es,
}

/// The metadata keys read, in order: gRPC's own first, then the HTTP one.
pub const LANGUAGE_HEADERS: [&str; 2] = ["grpc-accept-language", "accept-language"];

impl Lang {
    /// Every language, English first.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Es];

    /// The BCP 47 primary tag (`en`, `es`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    /// The language for a tag such as `es`, `es-MX` or `EN_gb`; `None` when not spoken.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next()?.trim();
        Lang::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(primary))
    }

    /// The caller's language: the spoken language with the highest weight in
    /// `grpc-accept-language`, else in `accept-language` (`es-MX,es;q=0.9,en;q=0.5`), else
    /// English. Malformed entries are skipped, never an error.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        [
            crate::headers::GRPC_ACCEPT_LANGUAGE,
            crate::headers::ACCEPT_LANGUAGE,
        ]
        .iter()
        .find_map(|name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .take(32)
                .filter_map(weighted)
                .filter(|(_, q)| *q > 0.0)
                // The first of the highest weight wins.
                .fold(None, |best: Option<(Lang, f32)>, (lang, q)| match best {
                    Some((_, bq)) if bq >= q => best,
                    _ => Some((lang, q)),
                })
                .map(|(lang, _)| lang)
        })
        .unwrap_or_default()
    }
}

/// `es-MX;q=0.8` as (Es, 0.8); `None` for a language not spoken or a malformed weight.
fn weighted(entry: &str) -> Option<(Lang, f32)> {
    let mut parts = entry.split(';');
    let lang = Lang::from_tag(parts.next()?.trim())?;
    let mut q = 1.0;
    for param in parts {
        if let Some(value) = param.trim().strip_prefix("q=") {
            q = value
                .trim()
                .parse()
                .ok()
                .filter(|q: &f32| (0.0..=1.0).contains(q))?;
        }
    }
    Some((lang, q))
}

/// DEADLINE_EXCEEDED's English text, for layers that name it in a constant.
pub const DEADLINE_EXCEEDED_EN: &str = "deadline exceeded";
/// INTERNAL's English text.
pub const INTERNAL_EN: &str = "internal error";
/// The rate limiter's English text.
pub const RATE_LIMITED_EN: &str = "rate limit exceeded";
/// UNAUTHENTICATED's English text when the call carries no credential.
pub const MISSING_CREDENTIALS_EN: &str = "missing credentials";

/// A fixed message of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Text {
    /// The timeout layer's DEADLINE_EXCEEDED.
    DeadlineExceeded,
    /// The panic-recovery layer's INTERNAL.
    Internal,
    /// The rate limiter's RESOURCE_EXHAUSTED.
    RateLimited,
    /// The validation layer's INVALID_ARGUMENT, with the violations in BadRequest.
    InvalidRequest,
    /// A request message that is not a valid encoding of its type.
    UndecodableMessage,
    /// A request compressed with an encoding the server does not support.
    UnsupportedEncoding,
    /// A message frame that ends early.
    TruncatedFrame,
    /// A message frame with a compressed flag other than 0 or 1.
    InvalidFrameFlag,
    /// A unary request without a message.
    MissingMessage,
    /// A unary request with more than one message.
    TooManyMessages,
    /// A request message above the size limit.
    MessageTooLarge,
    /// A backend (cache, database) that is unavailable; the detail stays in the logs.
    Unavailable,
    /// Metadata that is required and absent.
    MetadataRequired,
    /// Metadata longer than its limit.
    MetadataTooLong,
    /// Metadata that is not printable ASCII.
    MetadataNotText,
    /// BadRequest's last entry when the list was cut to fit the header budget.
    MoreViolations,
    /// The rate limiter's hint: followed by seconds (`retry in 1.250s`).
    RetryIn,
    /// The rate limiter's answer for a method whose quota is zero.
    MethodClosed,
    /// QuotaFailure's description: followed by the quota (`quota used up: 100/min`).
    QuotaUsedUp,
    /// A row that already exists (a unique key).
    AlreadyExists,
    /// A row that refers to a missing one, or is still referred to.
    RelatedResource,
    /// Data the store refused (a NOT NULL or CHECK rule).
    InvalidData,
    /// A row that does not exist.
    NotFound,
    /// A transaction aborted by a concurrent change.
    ConcurrentChange,
    /// UNAUTHENTICATED: the call carries no credential.
    MissingCredentials,
    /// UNAUTHENTICATED: the credential does not verify (never says which check failed).
    InvalidCredentials,
    /// UNAUTHENTICATED: the credential has expired.
    ExpiredCredentials,
    /// PERMISSION_DENIED: the caller may not do this.
    PermissionDenied,
    /// RESOURCE_EXHAUSTED: the server sheds load.
    Overloaded,
}

impl Text {
    /// Every message, for completeness checks.
    pub const ALL: [Text; 29] = [
        Text::DeadlineExceeded,
        Text::Internal,
        Text::RateLimited,
        Text::InvalidRequest,
        Text::UndecodableMessage,
        Text::UnsupportedEncoding,
        Text::TruncatedFrame,
        Text::InvalidFrameFlag,
        Text::MissingMessage,
        Text::TooManyMessages,
        Text::MessageTooLarge,
        Text::Unavailable,
        Text::MetadataRequired,
        Text::MetadataTooLong,
        Text::MetadataNotText,
        Text::MoreViolations,
        Text::RetryIn,
        Text::MethodClosed,
        Text::QuotaUsedUp,
        Text::AlreadyExists,
        Text::RelatedResource,
        Text::InvalidData,
        Text::NotFound,
        Text::ConcurrentChange,
        Text::MissingCredentials,
        Text::InvalidCredentials,
        Text::ExpiredCredentials,
        Text::PermissionDenied,
        Text::Overloaded,
    ];

    /// The message in `lang`.
    pub fn text(self, lang: Lang) -> &'static str {
        self.message().text(lang)
    }

    /// The entry: its key (the variant in snake case, `deadline_exceeded`) and texts.
    pub const fn message(self) -> Message {
        match self {
            Text::DeadlineExceeded => {
                Message::new("deadline_exceeded", DEADLINE_EXCEEDED_EN).es("plazo excedido")
            }
            Text::Internal => Message::new("internal", INTERNAL_EN).es("error interno"),
            Text::RateLimited => {
                Message::new("rate_limited", RATE_LIMITED_EN).es("límite de peticiones excedido")
            }
            Text::InvalidRequest => {
                Message::new("invalid_request", "request is invalid").es("la petición no es válida")
            }
            Text::UndecodableMessage => Message::new(
                "undecodable_message",
                "request message could not be decoded",
            )
            .es("el mensaje de la petición no se pudo decodificar"),
            Text::UnsupportedEncoding => Message::new(
                "unsupported_encoding",
                "request message compression is not supported",
            )
            .es("la compresión del mensaje de la petición no está soportada"),
            Text::TruncatedFrame => {
                Message::new("truncated_frame", "request message frame is truncated")
                    .es("la trama del mensaje de la petición está truncada")
            }
            Text::InvalidFrameFlag => Message::new(
                "invalid_frame_flag",
                "request message frame has an invalid compressed flag",
            )
            .es("la trama del mensaje de la petición tiene un indicador de compresión no válido"),
            Text::MissingMessage => Message::new("missing_message", "request has no message")
                .es("la petición no tiene mensaje"),
            Text::TooManyMessages => Message::new(
                "too_many_messages",
                "unary request has more than one message",
            )
            .es("la petición unaria tiene más de un mensaje"),
            Text::MessageTooLarge => Message::new(
                "message_too_large",
                "request message is larger than the limit",
            )
            .es("el mensaje de la petición supera el límite"),
            Text::Unavailable => Message::new(
                "unavailable",
                "service temporarily unavailable, try again later",
            )
            .es("servicio no disponible temporalmente, inténtelo más tarde"),
            Text::MetadataRequired => {
                Message::new("metadata_required", "is required").es("es obligatorio")
            }
            Text::MetadataTooLong => Message::new("metadata_too_long", "is longer than the limit")
                .es("supera la longitud máxima"),
            Text::MetadataNotText => Message::new("metadata_not_text", "must be printable text")
                .es("debe ser texto imprimible"),
            Text::MoreViolations => {
                Message::new("more_violations", "more violations were not listed")
                    .es("hay más infracciones que no se listan")
            }
            Text::RetryIn => Message::new("retry_in", "retry in").es("reintente en"),
            Text::MethodClosed => Message::new("method_closed", "this method accepts no calls")
                .es("este método no acepta llamadas"),
            Text::QuotaUsedUp => Message::new("quota_used_up", "quota used up").es("cuota agotada"),
            Text::AlreadyExists => Message::new("already_exists", "already exists").es("ya existe"),
            Text::RelatedResource => Message::new(
                "related_resource",
                "a related resource is missing or still in use",
            )
            .es("un recurso relacionado falta o sigue en uso"),
            Text::InvalidData => {
                Message::new("invalid_data", "invalid argument").es("argumento no válido")
            }
            Text::NotFound => Message::new("not_found", "not found").es("no encontrado"),
            Text::ConcurrentChange => {
                Message::new("concurrent_change", "aborted by a concurrent change, retry")
                    .es("cancelado por un cambio concurrente, reintente")
            }
            Text::MissingCredentials => Message::new("missing_credentials", MISSING_CREDENTIALS_EN)
                .es("faltan las credenciales"),
            Text::InvalidCredentials => Message::new("invalid_credentials", "invalid credentials")
                .es("credenciales no válidas"),
            Text::ExpiredCredentials => Message::new("expired_credentials", "expired credentials")
                .es("credenciales caducadas"),
            Text::PermissionDenied => {
                Message::new("permission_denied", "permission denied").es("permiso denegado")
            }
            Text::Overloaded => Message::new("overloaded", "server overloaded, retry later")
                .es("servidor sobrecargado, reintente más tarde"),
        }
    }
}

/// One message: a key that names it and its text per language. The catalogue's [`Text`]s are
/// messages; a service declares its own as constants (see the [module docs](self)).
///
/// A language without a translation reads the English text (and then gets no
/// LocalizedMessage: it would say nothing `grpc-message` does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    key: &'static str,
    en: &'static str,
    es: Option<&'static str>,
}

impl Message {
    /// The message `key` (such as `payments.not_found`), in English `en`.
    pub const fn new(key: &'static str, en: &'static str) -> Self {
        Self { key, en, es: None }
    }

    /// With its Spanish text.
    pub const fn es(mut self, text: &'static str) -> Self {
        self.es = Some(text);
        self
    }

    /// Its key.
    pub const fn key(&self) -> &'static str {
        self.key
    }

    /// The text in `lang`, English when it has none in `lang`.
    pub fn text(&self, lang: Lang) -> &'static str {
        self.translation(lang).unwrap_or(self.en)
    }

    /// The text in `lang` when it has one.
    pub fn translation(&self, lang: Lang) -> Option<&'static str> {
        match lang {
            Lang::En => Some(self.en),
            Lang::Es => self.es,
        }
    }
}

impl From<Text> for Message {
    fn from(text: Text) -> Self {
        text.message()
    }
}

/// A service's own messages, declared once:
/// `const MESSAGES: Catalogue = Catalogue::new(&[NOT_FOUND, ...]);`. A test of the service
/// calls [`check`](Catalogue::check), so a key used twice or a missing translation fails the
/// build's tests rather than reaching a caller.
#[derive(Clone, Copy, Debug)]
pub struct Catalogue {
    messages: &'static [Message],
}

impl Catalogue {
    /// The catalogue of `messages`.
    pub const fn new(messages: &'static [Message]) -> Self {
        Self { messages }
    }

    /// Its messages.
    pub fn messages(&self) -> &'static [Message] {
        self.messages
    }

    /// The message of `key`.
    pub fn get(&self, key: &str) -> Option<Message> {
        self.messages.iter().find(|m| m.key == key).copied()
    }

    /// Every key non-empty and used once, every text non-empty and present in every
    /// [`Lang`].
    pub fn check(&self) -> Result<(), CatalogueError> {
        check(self.messages.iter().copied())
    }
}

fn check(messages: impl Iterator<Item = Message>) -> Result<(), CatalogueError> {
    let mut keys = std::collections::HashSet::new();
    for message in messages {
        if message.key.is_empty() {
            return Err(CatalogueError::EmptyKey);
        }
        if !keys.insert(message.key) {
            return Err(CatalogueError::DuplicateKey(message.key));
        }
        for lang in Lang::ALL {
            if message.translation(lang).is_none_or(str::is_empty) {
                return Err(CatalogueError::Untranslated {
                    key: message.key,
                    lang,
                });
            }
        }
    }
    Ok(())
}

/// What [`Catalogue::check`] found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogueError {
    /// A message with an empty key.
    EmptyKey,
    /// A key used by two messages.
    DuplicateKey(&'static str),
    /// A message with no text (or an empty one) in a language.
    Untranslated {
        /// The message's key.
        key: &'static str,
        /// The language.
        lang: Lang,
    },
}

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyKey => f.write_str("a message has an empty key"),
            Self::DuplicateKey(key) => write!(f, "the key {key:?} names two messages"),
            Self::Untranslated { key, lang } => {
                write!(f, "the message {key:?} has no text in {:?}", lang.tag())
            }
        }
    }
}

impl std::error::Error for CatalogueError {}

/// A text per language: a [`Text`], a [`Message`], or a closure that composes one from them
/// (`|lang: Lang| format!("{} (64)", Text::MetadataTooLong.text(lang))`). A plain string reads
/// the same in every language.
pub trait Localize {
    /// The text in `lang`.
    fn localize(&self, lang: Lang) -> Cow<'static, str>;
}

impl Localize for Text {
    fn localize(&self, lang: Lang) -> Cow<'static, str> {
        Cow::Borrowed(self.text(lang))
    }
}

impl Localize for Message {
    fn localize(&self, lang: Lang) -> Cow<'static, str> {
        Cow::Borrowed(self.text(lang))
    }
}

impl Localize for &'static str {
    fn localize(&self, _: Lang) -> Cow<'static, str> {
        Cow::Borrowed(self)
    }
}

impl Localize for String {
    fn localize(&self, _: Lang) -> Cow<'static, str> {
        Cow::Owned(self.clone())
    }
}

impl<F, S> Localize for F
where
    F: Fn(Lang) -> S,
    S: Into<Cow<'static, str>>,
{
    fn localize(&self, lang: Lang) -> Cow<'static, str> {
        self(lang).into()
    }
}

/// The `google.rpc.LocalizedMessage` of `message` for a caller speaking `lang`: `None` for
/// English, and for a text that reads the same as its English one (it has no translation).
pub fn localized_message<L: Localize + ?Sized>(
    message: &L,
    lang: Lang,
) -> Option<LocalizedMessage> {
    if lang == Lang::En {
        return None;
    }
    let text = message.localize(lang);
    (text != message.localize(Lang::En)).then(|| LocalizedMessage::new(lang.tag(), text))
}

/// Adds the LocalizedMessage of `message` in `lang` (see [`localized_message`]) to the
/// details a layer builds; whether it added one.
pub fn localize<L: Localize + ?Sized>(details: &mut ErrorDetails, message: &L, lang: Lang) -> bool {
    match localized_message(message, lang) {
        Some(localized) => {
            details.set_localized_message(localized.locale, localized.message);
            true
        }
        None => false,
    }
}

/// A status with `code` and `message`: English in `grpc-message`, and for a caller speaking
/// another `lang` a LocalizedMessage in `grpc-status-details-bin` (an English caller gets no
/// details at all).
pub fn status(code: Code, message: impl Localize, lang: Lang) -> Status {
    let english = message.localize(Lang::En);
    match localized_message(&message, lang) {
        Some(localized) => Status::with_error_details(
            code,
            english,
            ErrorDetails::with_localized_message(localized.locale, localized.message),
        ),
        None => Status::new(code, english),
    }
}

/// [`status`] with the layer's own `details` (BadRequest, RetryInfo, QuotaFailure, ...), the
/// LocalizedMessage added next to them.
pub fn status_with_details(
    code: Code,
    message: impl Localize,
    lang: Lang,
    details: ErrorDetails,
) -> Status {
    status_with_details_and_metadata(code, message, lang, details, MetadataMap::new())
}

/// [`status_with_details`] with metadata (sent in the trailers-only response's headers).
pub fn status_with_details_and_metadata(
    code: Code,
    message: impl Localize,
    lang: Lang,
    mut details: ErrorDetails,
    metadata: MetadataMap,
) -> Status {
    localize(&mut details, &message, lang);
    Status::with_error_details_and_metadata(code, message.localize(Lang::En), details, metadata)
}

/// The description of a violated `buf.validate` rule in `lang`, from its rule id
/// (`string.min_len`) and the rule's value (`3`); `None` when the catalogue has no
/// translation, and the validation engine's English description is used.
pub fn rule_description(rule_id: &str, value: &str, lang: Lang) -> Option<String> {
    let template = match lang {
        Lang::En => return None,
        Lang::Es => spanish_rule(rule_id)?,
    };
    Some(template.replace("{}", value))
}

fn spanish_rule(rule_id: &str) -> Option<&'static str> {
    // The part after the type (`string.min_len` -> `min_len`) reads the same for every
    // numeric type; the strings and collections have their own words.
    let (kind, rule) = rule_id.split_once('.').unwrap_or(("", rule_id));
    Some(match (kind, rule) {
        (_, "required") => "el valor es obligatorio",
        ("string", "min_len") => "debe tener al menos {} caracteres",
        ("string", "max_len") => "debe tener como máximo {} caracteres",
        ("string", "len") => "debe tener exactamente {} caracteres",
        ("string", "min_bytes") => "debe tener al menos {} bytes",
        ("string", "max_bytes") => "debe tener como máximo {} bytes",
        ("string", "pattern") => "no coincide con el patrón {}",
        ("string", "prefix") => "debe empezar por {}",
        ("string", "suffix") => "debe terminar en {}",
        ("string", "contains") => "debe contener {}",
        ("string", "email") | ("string", "email_empty") => {
            "debe ser una dirección de correo válida"
        }
        ("string", "uuid") | ("string", "uuid_empty") => "debe ser un UUID válido",
        ("string", "uri") | ("string", "uri_empty") => "debe ser un URI válido",
        ("string", "hostname") | ("string", "hostname_empty") => {
            "debe ser un nombre de host válido"
        }
        ("string", "in") => "debe ser uno de {}",
        ("string", "not_in") => "no puede ser uno de {}",
        ("string", "const") => "debe ser igual a {}",
        ("repeated", "min_items") => "debe tener al menos {} elementos",
        ("repeated", "max_items") => "debe tener como máximo {} elementos",
        ("repeated", "unique") => "los elementos deben ser únicos",
        ("map", "min_pairs") => "debe tener al menos {} entradas",
        ("map", "max_pairs") => "debe tener como máximo {} entradas",
        ("enum", "defined_only") => "debe ser un valor definido del enumerado",
        ("enum", "in") => "debe ser uno de {}",
        ("enum", "not_in") => "no puede ser uno de {}",
        ("enum", "const") => "debe ser igual a {}",
        (_, "gt") => "debe ser mayor que {}",
        (_, "gte") => "debe ser mayor o igual que {}",
        (_, "lt") => "debe ser menor que {}",
        (_, "lte") => "debe ser menor o igual que {}",
        (_, "const") => "debe ser igual a {}",
        (_, "in") => "debe ser uno de {}",
        (_, "not_in") => "no puede ser uno de {}",
        (_, _) if rule.starts_with("gt_") || rule.starts_with("gte_") => {
            "está fuera del rango permitido"
        }
        ("", "oneof") | ("oneof", _) => "se debe indicar exactamente un campo",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, http::HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn the_heaviest_spoken_language_wins_and_grpc_comes_first() {
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::En);
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "fr, es;q=0.4, en;q=0.3")])),
            Lang::Es
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "en;q=0.4, es-ES;q=0.9")])),
            Lang::Es
        );
        assert_eq!(
            Lang::from_headers(&headers(&[
                ("grpc-accept-language", "en"),
                ("accept-language", "es"),
            ])),
            Lang::En
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "es;q=0, en;q=0.1")])),
            Lang::En
        );
        assert_eq!(
            Lang::from_headers(&headers(&[("accept-language", "es;q=banana, de")])),
            Lang::En
        );
    }

    #[test]
    fn every_message_exists_in_every_language_and_says_nothing_internal() {
        check(Text::ALL.into_iter().map(Text::message)).expect("the built-in catalogue");
        for text in Text::ALL {
            let en = text.text(Lang::En);
            let es = text.text(Lang::Es);
            assert!(!en.is_empty() && !es.is_empty(), "{text:?}");
            assert_ne!(en, es, "{text:?} is not translated");
        }
    }

    #[test]
    fn a_catalogue_check_finds_duplicate_keys_and_missing_translations() {
        const A: Message = Message::new("svc.a", "a").es("a (es)");
        const B: Message = Message::new("svc.b", "b");
        const UNNAMED: Message = Message::new("", "x").es("y");
        assert_eq!(Catalogue::new(&[A]).check(), Ok(()));
        assert_eq!(
            Catalogue::new(&[A, A]).check(),
            Err(CatalogueError::DuplicateKey("svc.a"))
        );
        assert_eq!(
            Catalogue::new(&[A, B]).check(),
            Err(CatalogueError::Untranslated {
                key: "svc.b",
                lang: Lang::Es
            })
        );
        assert_eq!(
            Catalogue::new(&[UNNAMED]).check(),
            Err(CatalogueError::EmptyKey)
        );
        assert_eq!(Catalogue::new(&[A, B]).get("svc.b"), Some(B));
        // Untranslated reads English.
        assert_eq!(B.text(Lang::Es), "b");
    }

    /// The `google.rpc.Status` in the details: its code and message must equal the headers.
    fn details_status(status: &Status) -> tonic_types::pb::Status {
        prost::Message::decode(status.details()).expect("google.rpc.Status")
    }

    #[test]
    fn statuses_say_english_and_localize_in_a_detail() {
        let english = status(Code::NotFound, Text::NotFound, Lang::En);
        assert_eq!(english.code(), Code::NotFound);
        assert_eq!(english.message(), "not found");
        assert!(english.details().is_empty());

        let spanish = status(Code::NotFound, Text::NotFound, Lang::Es);
        assert_eq!(spanish.message(), "not found");
        let inner = details_status(&spanish);
        assert_eq!(inner.code, Code::NotFound as i32);
        assert_eq!(inner.message, "not found");
        let localized = spanish
            .get_details_localized_message()
            .expect("LocalizedMessage");
        assert_eq!(
            (localized.locale.as_str(), localized.message.as_str()),
            ("es", "no encontrado")
        );

        // Composed texts and the layer's own details.
        let retry = |lang: Lang| format!("{} 2s", Text::RetryIn.text(lang));
        let with = status_with_details(
            Code::ResourceExhausted,
            retry,
            Lang::Es,
            ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(2))),
        );
        assert_eq!(with.message(), "retry in 2s");
        let details = with.get_error_details();
        assert!(details.retry_info().is_some());
        assert_eq!(
            details.localized_message().expect("localized").message,
            "reintente en 2s"
        );
        assert_eq!(details_status(&with).message, "retry in 2s");

        // A plain string has no translation: no LocalizedMessage.
        assert!(
            status(Code::Internal, "boom", Lang::Es)
                .details()
                .is_empty()
        );
        assert!(localized_message(&"boom", Lang::Es).is_none());
    }

    #[test]
    fn rules_read_in_spanish_with_their_value() {
        assert_eq!(
            rule_description("string.max_len", "64", Lang::Es).as_deref(),
            Some("debe tener como máximo 64 caracteres")
        );
        assert_eq!(
            rule_description("int64.gt", "0", Lang::Es).as_deref(),
            Some("debe ser mayor que 0")
        );
        assert_eq!(rule_description("int64.gt", "0", Lang::En), None);
        assert_eq!(rule_description("custom.thing", "", Lang::Es), None);
    }
}
