//! Errors of the `bigflow` tool and their exit codes.

/// A failure with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Bad usage or configuration: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Something the tool ran failed: exit code 1.
    #[error("{0}")]
    Failed(String),
    /// A delegated process exited with this code; its own output said why.
    #[error("")]
    Exit(u8),
}

impl ToolError {
    /// A usage/configuration error.
    pub fn usage(message: impl std::fmt::Display) -> Self {
        ToolError::Usage(message.to_string())
    }

    /// A failure of something the tool ran.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        ToolError::Failed(message.to_string())
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            ToolError::Usage(_) => 2,
            ToolError::Failed(_) => 1,
            ToolError::Exit(code) => *code,
        }
    }
}

/// The tool's result type.
pub type Result<T, E = ToolError> = std::result::Result<T, E>;
