//! What the engine's SIMD code shares: which AVX-512 features the CPU has,
//! [`dispatch`] (plain Rust compiled for AVX-512 when the CPU has it), and
//! the sums in 16 fixed lanes that make the SIMD and portable paths agree.
//!
//! A leaf: `kernel` and `attention` both use it.

/// Runs `f` compiled with AVX-512 when the CPU has it: `f` is inlined into a
/// function built with the feature, whose code it then becomes.
macro_rules! dispatch {
    ($name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        pub(crate) fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn wide($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU has AVX-512F (checked).
                    return unsafe { wide($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// Whether the CPU has AVX-512 F and BW (and the engine may use them:
/// `SLUICE_PORTABLE_KERNEL` set turns every SIMD path off, to compare).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var_os("SLUICE_PORTABLE_KERNEL").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
    })
}

/// Whether the CPU has AVX-512 F, BW and VNNI (the kernel's products).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512_vnni() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var_os("SLUICE_PORTABLE_KERNEL").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// The 16 lanes' sum, halves first (the order of a vector reduction).
#[inline(always)]
pub(crate) fn reduce(mut lanes: [f32; 16]) -> f32 {
    for width in [8, 4, 2, 1] {
        for j in 0..width {
            lanes[j] += lanes[j + width];
        }
    }
    lanes[0]
}

/// `Σ a·b` in 16 lanes, added in a fixed order.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    for (a, b) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for j in 0..16 {
            lanes[j] += a[j] * b[j];
        }
    }
    let mut tail = 0.0;
    for (a, b) in a
        .chunks_exact(16)
        .remainder()
        .iter()
        .zip(b.chunks_exact(16).remainder())
    {
        tail += a * b;
    }
    reduce(lanes) + tail
}
