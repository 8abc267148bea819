//! What the engine's SIMD code shares: which vector features the CPU has,
//! [`dispatch`] (plain Rust compiled for AVX-512, or for AVX2, when the CPU
//! has it), the sums in 16 fixed lanes that make the SIMD and portable paths
//! agree, and an exact `f16` to `f32` conversion that vectorizes.
//!
//! A leaf: `kernel` and `attention` both use it.

/// Defines `$name`, running `$body` compiled for AVX-512 when the CPU has
/// it, else for AVX2 (with FMA and F16C), else for the baseline: the body is
/// inlined into a function built with the features, whose code it then
/// becomes. Rust never fuses or reorders floating-point operations, so every
/// build gives the same bits.
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
                #[target_feature(enable = "avx2,fma,f16c")]
                fn mid($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU has AVX-512F (checked).
                    return unsafe { wide($($arg),*) };
                }
                if $crate::simd::has_avx2() {
                    // SAFETY: the CPU has AVX2, FMA and F16C (checked).
                    return unsafe { mid($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// The widest vectors the engine uses: what the CPU has, capped by
/// `SLUICE_KERNEL` (`portable` or `avx2`), to compare the paths.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Portable,
    /// AVX2, FMA and F16C (x86-64-v3).
    Avx2,
    /// AVX-512 F, BW and VNNI.
    Avx512,
}

#[cfg(target_arch = "x86_64")]
fn level() -> Level {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let has = |features: &[bool]| features.iter().all(|&f| f);
        let cpu = if has(&[
            is_x86_feature_detected!("avx512f"),
            is_x86_feature_detected!("avx512bw"),
            is_x86_feature_detected!("avx512vnni"),
        ]) {
            Level::Avx512
        } else if has(&[
            is_x86_feature_detected!("avx2"),
            is_x86_feature_detected!("fma"),
            is_x86_feature_detected!("f16c"),
        ]) {
            Level::Avx2
        } else {
            Level::Portable
        };
        let cap = match std::env::var("SLUICE_KERNEL").as_deref() {
            Ok("portable") => Level::Portable,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        cpu.min(cap)
    })
}

/// Whether the engine may use AVX-512 F, BW and VNNI.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    level() == Level::Avx512
}

/// Whether the engine may use AVX2, FMA and F16C (true with AVX-512 too).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    level() >= Level::Avx2
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

/// An `f16`'s value as `f32`, exactly, without a branch or a table (so loops
/// over it vectorize): the exponent and mantissa moved into place and scaled
/// by 2^112 (which also normalizes subnormals), infinities and NaNs kept.
#[inline(always)]
pub(crate) fn f16_to_f32(h: half::f16) -> f32 {
    let h = u32::from(h.to_bits());
    let magnitude = (h & 0x7FFF) << 13;
    let scaled = f32::from_bits(magnitude) * f32::from_bits(0x7780_0000);
    let bits = if h & 0x7C00 == 0x7C00 {
        magnitude | 0x7F80_0000
    } else {
        scaled.to_bits()
    };
    f32::from_bits(bits | ((h & 0x8000) << 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_converts_exactly() {
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            let (got, want) = (f16_to_f32(h), h.to_f32());
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{bits:#x}"
            );
        }
    }
}
