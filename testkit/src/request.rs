//! Builders for the test service's requests.

use crate::pb::{Action, TestRequest};

impl TestRequest {
    /// A request that echoes `payload`.
    pub fn echo(payload: impl Into<Vec<u8>>) -> Self {
        Self {
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// Sleep this long (before the response, or before each streamed response).
    pub fn sleep_ms(mut self, ms: u32) -> Self {
        self.sleep_ms = ms;
        self
    }

    /// Answer this many streamed responses.
    pub fn count(mut self, n: u32) -> Self {
        self.response_count = n;
        self
    }

    /// Panic (with [`crate::PANIC_TEXT`] in the message).
    pub fn panic(mut self) -> Self {
        self.action = Action::Panic as i32;
        self
    }

    /// Fail with `code` and `message`.
    pub fn fail(mut self, code: tonic::Code, message: &str) -> Self {
        self.action = Action::Fail as i32;
        self.fail_code = code as i32;
        self.fail_message = message.to_owned();
        self
    }

    /// Unary: send this response metadata.
    pub fn respond_with(mut self, key: &str, value: &str) -> Self {
        self.response_metadata
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// For a server stream: act after the first response instead of before any.
    pub fn mid_stream(mut self) -> Self {
        self.mid_stream = true;
        self
    }
}
