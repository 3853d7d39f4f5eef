//! The service's own error messages, registered beside the kit's catalogue: a key, the English
//! text (sent in `grpc-message`, for developers) and the Spanish one (sent in a
//! `google.rpc.LocalizedMessage` detail to a caller whose `grpc-accept-language` or
//! `accept-language` asks for it).
//!
//! Handlers build their statuses with [`catalogue::status`](tonic_blueprint::core::catalogue::status)
//! from these and from the kit's own texts ([`Text::PermissionDenied`],
//! [`Text::ConcurrentChange`]):
//!
//! ```
//! use payments_example::messages::PAYMENT_NOT_FOUND;
//! use tonic_blueprint::core::catalogue::{self, Lang};
//!
//! let status = catalogue::status(tonic::Code::NotFound, PAYMENT_NOT_FOUND, Lang::Es);
//! assert_eq!(status.message(), "payment not found");
//! ```
//!
//! [`Text::PermissionDenied`]: tonic_blueprint::core::catalogue::Text::PermissionDenied
//! [`Text::ConcurrentChange`]: tonic_blueprint::core::catalogue::Text::ConcurrentChange

use tonic_blueprint::core::catalogue::{Catalogue, Message};

/// NOT_FOUND: a missing payment, and another user's (its existence is not given away).
pub const PAYMENT_NOT_FOUND: Message =
    Message::new("payments.payment_not_found", "payment not found").es("pago no encontrado");

/// INVALID_ARGUMENT: an `idempotency-key` sent twice or out of its bounds.
pub const INVALID_IDEMPOTENCY_KEY: Message = Message::new(
    "payments.invalid_idempotency_key",
    "invalid idempotency-key: send it once, 1 to 128 printable ASCII characters (! to ~, no spaces)",
)
.es(
    "idempotency-key no válida: se envía una sola vez, con 1 a 128 caracteres ASCII imprimibles (de ! a ~, sin espacios)",
);

/// ALREADY_EXISTS: an `idempotency-key` already used for a different payment.
pub const IDEMPOTENCY_KEY_REUSED: Message = Message::new(
    "payments.idempotency_key_reused",
    "this idempotency-key was used for a different payment: use a new key for each payment",
)
.es("esta idempotency-key ya se usó para otro pago: usa una nueva para cada pago");

/// INVALID_ARGUMENT: a `page_token` that is not a previous page's `next_page_token`.
pub const INVALID_PAGE_TOKEN: Message = Message::new(
    "payments.invalid_page_token",
    "invalid page_token: pass the previous page's next_page_token",
)
.es("page_token no válido: usa next_page_token de la página anterior");

/// INVALID_ARGUMENT: a negative `page_size`.
pub const INVALID_PAGE_SIZE: Message = Message::new(
    "payments.invalid_page_size",
    "invalid page_size: 0 (the default page) to 100",
)
.es("page_size no válido: de 0 (la página por defecto) a 100");

/// RESOURCE_EXHAUSTED: the user has the most watches a user may open.
pub const TOO_MANY_WATCHERS_PER_USER: Message = Message::new(
    "payments.too_many_watchers_per_user",
    "too many watches open for this user: close one before opening another",
)
.es("demasiadas suscripciones abiertas para este usuario: cierra una antes de abrir otra");

/// RESOURCE_EXHAUSTED: the replica has the most watches it takes.
pub const TOO_MANY_WATCHERS: Message = Message::new(
    "payments.too_many_watchers",
    "the server has too many watches open: retry later or on another replica",
)
.es("el servidor tiene demasiadas suscripciones abiertas: reintenta más tarde u otra réplica");

/// RESOURCE_EXHAUSTED: a watcher that fell too far behind.
pub const WATCHER_TOO_SLOW: Message = Message::new(
    "payments.watcher_too_slow",
    "this watch fell too far behind: watch again with after_sequence to resume",
)
.es(
    "la suscripción se quedó demasiado atrás: vuelve a suscribirte con after_sequence para reanudar",
);

/// UNAVAILABLE: the replica is shutting down.
pub const SHUTTING_DOWN: Message = Message::new(
    "payments.shutting_down",
    "the server is shutting down: watch again with after_sequence to resume",
)
.es("el servidor se está deteniendo: vuelve a suscribirte con after_sequence para reanudar");

/// UNAVAILABLE: too many watchers catching up from the table.
pub const CATCH_UP_BUSY: Message = Message::new(
    "payments.catch_up_busy",
    "too many watches are catching up: retry",
)
.es("demasiadas suscripciones se están poniendo al día: reintenta");

/// Every message of the service.
pub const MESSAGES: Catalogue = Catalogue::new(&[
    PAYMENT_NOT_FOUND,
    INVALID_IDEMPOTENCY_KEY,
    IDEMPOTENCY_KEY_REUSED,
    INVALID_PAGE_TOKEN,
    INVALID_PAGE_SIZE,
    TOO_MANY_WATCHERS_PER_USER,
    TOO_MANY_WATCHERS,
    WATCHER_TOO_SLOW,
    SHUTTING_DOWN,
    CATCH_UP_BUSY,
]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_one_key_and_every_language() {
        MESSAGES.check().expect("the payments catalogue");
    }
}
