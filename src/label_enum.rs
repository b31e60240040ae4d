//! `label_enum!`: enums whose variants each have a written name, such as metric label values
//! and config words. One declaration gives the enum, its names and the list of every variant,
//! so a variant added later is labelled, zero-initialised and parsed like the others.

/// Declares an enum whose variants carry a written name: `Variant = "name"`.
///
/// Outer attributes and variant docs pass through. The enum derives `Clone, Copy, Debug,
/// PartialEq, Eq, Hash` and gets:
/// - `ALL`, every variant in declaration order; discriminants follow it, so `variant as
///   usize` indexes an array of `ALL.len()` elements;
/// - `as_str(self)`, the written name, and `Display`, which writes it;
/// - [`LabelEnum`], the same for code generic over label sets.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $text:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in declaration order (`variant as usize` is its index here).
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The written name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::label_enum::LabelEnum for $name {
            const ALL: &'static [Self] = $name::ALL;

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

pub(crate) use label_enum;

/// What every `label_enum!` enum offers, for code generic over label sets (such as one
/// metric series per value).
pub trait LabelEnum: Copy + 'static {
    /// Every variant, in declaration order.
    const ALL: &'static [Self];

    /// The written name.
    fn as_str(self) -> &'static str;

    /// The variant's position in `ALL`.
    fn index(self) -> usize;
}

#[cfg(test)]
mod tests {
    use super::LabelEnum;
    use crate::dns::select::AnswerResult;
    use crate::model::StrategyKind;

    #[test]
    fn all_lists_every_variant_in_declaration_order_indexed_by_discriminant() {
        assert_eq!(
            StrategyKind::ALL,
            [
                StrategyKind::RoundRobin,
                StrategyKind::Weighted,
                StrategyKind::Failover,
                StrategyKind::Geo,
            ]
        );
        for (index, &kind) in StrategyKind::ALL.iter().enumerate() {
            assert_eq!(kind as usize, index);
            assert_eq!(LabelEnum::index(kind), index);
        }
        assert_eq!(
            AnswerResult::ALL,
            [
                AnswerResult::Healthy,
                AnswerResult::FailOpen,
                AnswerResult::None
            ]
        );
    }

    #[test]
    fn as_str_and_display_write_the_declared_name() {
        let names: Vec<&str> = StrategyKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["round-robin", "weighted", "failover", "geo"]);
        let shown: Vec<String> = AnswerResult::ALL.iter().map(|r| r.to_string()).collect();
        assert_eq!(shown, ["healthy", "fail_open", "none"]);
    }

    #[test]
    fn outer_attributes_pass_through_so_serde_agrees_with_as_str() {
        for &kind in StrategyKind::ALL {
            let json = serde_json::to_string(&kind).expect("a unit variant serialises");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: StrategyKind = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(back, kind);
            assert_eq!(kind.as_str().parse::<StrategyKind>(), Ok(kind));
        }
    }
}
