//! The error catalogue: every message a blueprint layer sends to a client, in English and
//! Spanish, chosen from the request's `grpc-accept-language` or `accept-language` metadata.
//!
//! Messages say what was wrong with the request, never anything about the server: no panic
//! text, SQL, backend error or address ever goes into one. Layers capture the caller's
//! [`Lang`] when the call arrives and look the text up when they answer.
//!
//! ```
//! use tonic_blueprint_core::catalogue::{Lang, Text};
//!
//! let mut metadata = http::HeaderMap::new();
//! metadata.insert("accept-language", "es-MX,es;q=0.9,en;q=0.5".parse().unwrap());
//! let lang = Lang::from_headers(&metadata);
//! assert_eq!(lang, Lang::Es);
//! assert_eq!(Text::DeadlineExceeded.text(lang), "plazo excedido");
//! assert_eq!(Text::DeadlineExceeded.text(Lang::En), "deadline exceeded");
//! ```

use http::HeaderMap;

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
        use Lang::*;
        match (self, lang) {
            (Text::DeadlineExceeded, En) => DEADLINE_EXCEEDED_EN,
            (Text::DeadlineExceeded, Es) => "plazo excedido",
            (Text::Internal, En) => INTERNAL_EN,
            (Text::Internal, Es) => "error interno",
            (Text::RateLimited, En) => RATE_LIMITED_EN,
            (Text::RateLimited, Es) => "límite de peticiones excedido",
            (Text::InvalidRequest, En) => "request is invalid",
            (Text::InvalidRequest, Es) => "la petición no es válida",
            (Text::UndecodableMessage, En) => "request message could not be decoded",
            (Text::UndecodableMessage, Es) => "el mensaje de la petición no se pudo decodificar",
            (Text::UnsupportedEncoding, En) => "request message compression is not supported",
            (Text::UnsupportedEncoding, Es) => {
                "la compresión del mensaje de la petición no está soportada"
            }
            (Text::TruncatedFrame, En) => "request message frame is truncated",
            (Text::TruncatedFrame, Es) => "la trama del mensaje de la petición está truncada",
            (Text::InvalidFrameFlag, En) => "request message frame has an invalid compressed flag",
            (Text::InvalidFrameFlag, Es) => {
                "la trama del mensaje de la petición tiene un indicador de compresión no válido"
            }
            (Text::MissingMessage, En) => "request has no message",
            (Text::MissingMessage, Es) => "la petición no tiene mensaje",
            (Text::TooManyMessages, En) => "unary request has more than one message",
            (Text::TooManyMessages, Es) => "la petición unaria tiene más de un mensaje",
            (Text::MessageTooLarge, En) => "request message is larger than the limit",
            (Text::MessageTooLarge, Es) => "el mensaje de la petición supera el límite",
            (Text::Unavailable, En) => "service temporarily unavailable, try again later",
            (Text::Unavailable, Es) => "servicio no disponible temporalmente, inténtelo más tarde",
            (Text::MetadataRequired, En) => "is required",
            (Text::MetadataRequired, Es) => "es obligatorio",
            (Text::MetadataTooLong, En) => "is longer than the limit",
            (Text::MetadataTooLong, Es) => "supera la longitud máxima",
            (Text::MetadataNotText, En) => "must be printable text",
            (Text::MetadataNotText, Es) => "debe ser texto imprimible",
            (Text::MoreViolations, En) => "more violations were not listed",
            (Text::MoreViolations, Es) => "hay más infracciones que no se listan",
            (Text::RetryIn, En) => "retry in",
            (Text::RetryIn, Es) => "reintente en",
            (Text::MethodClosed, En) => "this method accepts no calls",
            (Text::MethodClosed, Es) => "este método no acepta llamadas",
            (Text::QuotaUsedUp, En) => "quota used up",
            (Text::QuotaUsedUp, Es) => "cuota agotada",
            (Text::AlreadyExists, En) => "already exists",
            (Text::AlreadyExists, Es) => "ya existe",
            (Text::RelatedResource, En) => "a related resource is missing or still in use",
            (Text::RelatedResource, Es) => "un recurso relacionado falta o sigue en uso",
            (Text::InvalidData, En) => "invalid argument",
            (Text::InvalidData, Es) => "argumento no válido",
            (Text::NotFound, En) => "not found",
            (Text::NotFound, Es) => "no encontrado",
            (Text::ConcurrentChange, En) => "aborted by a concurrent change, retry",
            (Text::ConcurrentChange, Es) => "cancelado por un cambio concurrente, reintente",
            (Text::MissingCredentials, En) => MISSING_CREDENTIALS_EN,
            (Text::MissingCredentials, Es) => "faltan las credenciales",
            (Text::InvalidCredentials, En) => "invalid credentials",
            (Text::InvalidCredentials, Es) => "credenciales no válidas",
            (Text::ExpiredCredentials, En) => "expired credentials",
            (Text::ExpiredCredentials, Es) => "credenciales caducadas",
            (Text::PermissionDenied, En) => "permission denied",
            (Text::PermissionDenied, Es) => "permiso denegado",
            (Text::Overloaded, En) => "server overloaded, retry later",
            (Text::Overloaded, Es) => "servidor sobrecargado, reintente más tarde",
        }
    }
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
        for text in Text::ALL {
            let en = text.text(Lang::En);
            let es = text.text(Lang::Es);
            assert!(!en.is_empty() && !es.is_empty(), "{text:?}");
            assert_ne!(en, es, "{text:?} is not translated");
        }
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
