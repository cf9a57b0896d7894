//! A hub method's positional arguments, read in order into typed values.

use palaver_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{AppError, AppResult};

/// The arguments of one invocation of `method`.
pub struct Args<'a> {
    method: &'a str,
    values: std::vec::IntoIter<Value>,
    taken: usize,
}

impl<'a> Args<'a> {
    pub fn new(method: &'a str, values: Vec<Value>) -> Self {
        Args {
            method,
            values: values.into_iter(),
            taken: 0,
        }
    }

    /// The next argument, named `name` in errors.
    ///
    /// # Errors
    /// `400 bad_request` when it is missing or not a `T`.
    pub fn next<T: DeserializeOwned>(&mut self, name: &str) -> AppResult<T> {
        self.taken += 1;
        let value = self.values.next().ok_or_else(|| {
            AppError::new(
                ErrorCode::BadRequest,
                format!(
                    "{} needs argument {} ({name})",
                    shown(self.method),
                    self.taken
                ),
            )
        })?;
        self.convert(name, value)
    }

    /// The next argument if there is one (`null` counts as none).
    ///
    /// # Errors
    /// `400 bad_request` when it is present and not a `T`.
    pub fn optional<T: DeserializeOwned>(&mut self, name: &str) -> AppResult<Option<T>> {
        self.taken += 1;
        match self.values.next() {
            None | Some(Value::Null) => Ok(None),
            Some(value) => self.convert(name, value).map(Some),
        }
    }

    fn convert<T: DeserializeOwned>(&self, name: &str, value: Value) -> AppResult<T> {
        serde_json::from_value(value).map_err(|e| {
            let why = e.to_string();
            AppError::new(
                ErrorCode::BadRequest,
                format!(
                    "{} argument {} ({name}) is invalid: {}",
                    shown(self.method),
                    self.taken,
                    why.split(" at line ").next().unwrap_or("")
                ),
            )
        })
    }

    /// Checks that no argument is left over.
    ///
    /// # Errors
    /// `400 bad_request` when the client sent more arguments than the method takes.
    pub fn finish(mut self) -> AppResult<()> {
        if self.values.next().is_some() {
            return Err(AppError::new(
                ErrorCode::BadRequest,
                format!(
                    "{} takes {} argument(s), more were given",
                    shown(self.method),
                    self.taken
                ),
            ));
        }
        Ok(())
    }
}

/// `400 unknown_type` for a method `hub` does not have.
pub fn unknown_method(hub: &str, method: &str) -> AppError {
    AppError::new(
        ErrorCode::UnknownType,
        format!("the {hub} hub has no method '{}'", shown(method)),
    )
}

/// A client-chosen method name as it may appear in an error: at most 64 characters.
pub fn shown(method: &str) -> String {
    method.chars().take(64).collect()
}
