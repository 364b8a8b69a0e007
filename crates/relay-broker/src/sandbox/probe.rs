//! Which Landlock ABI this kernel offers: 0 when it has no Landlock (not built in, or not
//! enabled at boot). `AGENT_RELAY_LANDLOCK_ABI=N` caps the answer at N, so a test (or a
//! cautious user) can see what happens on an older kernel, or one without Landlock.

/// The environment variable that caps the probed ABI.
pub const ABI_CAP_ENV: &str = "AGENT_RELAY_LANDLOCK_ABI";

/// The Landlock ABI in effect here (the kernel's, capped by [`ABI_CAP_ENV`]).
pub fn abi() -> u32 {
    let kernel = super::apply::kernel_abi();
    match std::env::var(ABI_CAP_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        Some(cap) => kernel.min(cap),
        None => kernel,
    }
}

/// What each ABI adds that a rule may need, for messages.
pub fn feature_of(abi: u32) -> &'static str {
    match abi {
        0 => "no Landlock",
        1 => "file access and execution",
        2 => "moving files between directories",
        3 => "truncating files",
        4 => "TCP connect and bind by port",
        5 => "device ioctl",
        6 => "signal and abstract socket scoping",
        _ => "audit logging",
    }
}

/// How the ABI reads in a message: `ABI 7`, or `no Landlock`.
pub fn describe(abi: u32) -> String {
    if abi == 0 {
        "no Landlock".to_string()
    } else {
        format!("Landlock ABI {abi}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_landlock_and_the_cap_lowers_it() {
        let real = crate::sandbox::apply::kernel_abi();
        assert!(
            real >= 4,
            "the kernel here has Landlock with networking (ABI {real})"
        );
        assert_eq!(describe(0), "no Landlock");
        assert_eq!(describe(3), "Landlock ABI 3");
        assert_eq!(feature_of(4), "TCP connect and bind by port");
    }
}
