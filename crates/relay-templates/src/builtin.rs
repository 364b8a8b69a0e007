//! The templates compiled into the binary, from this crate's `templates/` folder.

/// A template compiled into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The name users pick it by.
    pub name: &'static str,
    /// Its relay.yaml text.
    pub source: &'static str,
}

/// The built-in templates, in name order.
pub const BUILTINS: [Builtin; 6] = [
    Builtin {
        name: "bug-fix",
        source: include_str!("../templates/bug-fix.yaml"),
    },
    Builtin {
        name: "code-review",
        source: include_str!("../templates/code-review.yaml"),
    },
    Builtin {
        name: "documentation",
        source: include_str!("../templates/documentation.yaml"),
    },
    Builtin {
        name: "feature-dev",
        source: include_str!("../templates/feature-dev.yaml"),
    },
    Builtin {
        name: "refactor",
        source: include_str!("../templates/refactor.yaml"),
    },
    Builtin {
        name: "security-audit",
        source: include_str!("../templates/security-audit.yaml"),
    },
];

/// The built-in template called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}
