//! The accessors every blueprint middleware has, written once.

/// Expands, inside `impl<S> Middleware<S> { .. }` of a middleware whose inner service is the
/// field `inner`, to `get_ref`, `get_mut` and `into_inner`, as tower-http's middleware have.
///
/// ```
/// #[derive(Debug)]
/// pub struct Wrapper<S> {
///     inner: S,
/// }
///
/// impl<S> Wrapper<S> {
///     tonic_blueprint_core::inner_accessors!();
/// }
///
/// let mut wrapper = Wrapper { inner: 7 };
/// *wrapper.get_mut() += 1;
/// assert_eq!(*wrapper.get_ref(), 8);
/// assert_eq!(wrapper.into_inner(), 8);
/// ```
#[macro_export]
macro_rules! inner_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}
