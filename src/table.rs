//! Typed label tables: an enum whose variants and label strings are written once, and [`PerKey`], one value
//! per variant.
//!
//! Every bounded label list of the exporter (metric keys, message kinds, failure reasons, model and category
//! labels) is such an enum, so a table is indexed by its variants, never by a bare position: reordering the
//! variants cannot move a value to another series, and a table always has exactly one slot per variant.

use std::fmt;
use std::ops::{Index, IndexMut};

/// A fieldless enum whose variants are the values of one label (implemented by `label_enum!`).
pub trait Label: Copy + Eq + fmt::Debug + 'static {
    /// One `T` per variant: `[T; COUNT]`.
    type Array<T>: AsRef<[T]> + AsMut<[T]>;

    /// Every variant, in declaration order.
    fn all() -> &'static [Self];
    /// The position of this variant in [`Label::all`].
    fn index(self) -> usize;
    /// The label value.
    fn label(self) -> &'static str;
    /// The array whose element for each variant is `f(variant)`.
    fn array<T>(f: impl FnMut(Self) -> T) -> Self::Array<T>;
}

/// Defines a [`Label`] enum from one list of `Variant => "label"` pairs, with `ALL`, `COUNT`, `label()`,
/// `from_label()` and `Display` (the label).
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $label:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [Self; Self::COUNT] = [$(Self::$variant),+];
            /// The number of variants.
            pub const COUNT: usize = [$(Self::$variant),+].len();
            /// Every label, in declaration order.
            #[allow(dead_code)]
            pub const LABELS: [&'static str; Self::COUNT] = [$($label),+];

            /// The label value.
            pub const fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }

            /// The variant whose label is `s` exactly (a `match`: the compiler dispatches on the length first).
            #[inline]
            pub fn from_label(s: &str) -> Option<Self> {
                match s {
                    $($label => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        #[allow(dead_code)]
        impl $name {
            /// The variant whose label is `s` without regard to ASCII case or surrounding blanks (for values an
            /// operator types: settings and flags).
            pub fn parse_ignore_case(s: &str) -> Option<Self> {
                let s = s.trim();
                Self::ALL.into_iter().find(|v| v.label().eq_ignore_ascii_case(s))
            }
        }

        impl $crate::table::Label for $name {
            type Array<T> = [T; Self::COUNT];

            fn all() -> &'static [Self] {
                &Self::ALL
            }
            #[inline]
            fn index(self) -> usize {
                self as usize
            }
            fn label(self) -> &'static str {
                $name::label(self)
            }
            fn array<T>(f: impl FnMut(Self) -> T) -> [T; Self::COUNT] {
                Self::ALL.map(f)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}
pub(crate) use label_enum;

/// One `T` per variant of `K`, indexed by the variant.
pub struct PerKey<K: Label, T>(K::Array<T>);

impl<K: Label, T> PerKey<K, T> {
    /// The table whose value for each variant is `f(variant)`.
    pub fn from_fn(f: impl FnMut(K) -> T) -> Self {
        PerKey(K::array(f))
    }

    /// (variant, value) in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (K, &T)> {
        K::all().iter().copied().zip(self.0.as_ref())
    }

    /// The values in declaration order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.as_ref().iter()
    }
}

impl<K: Label, T> Index<K> for PerKey<K, T> {
    type Output = T;
    #[inline]
    fn index(&self, k: K) -> &T {
        &self.0.as_ref()[k.index()]
    }
}

impl<K: Label, T> IndexMut<K> for PerKey<K, T> {
    #[inline]
    fn index_mut(&mut self, k: K) -> &mut T {
        &mut self.0.as_mut()[k.index()]
    }
}

impl<K: Label, T: Default> Default for PerKey<K, T> {
    fn default() -> Self {
        PerKey::from_fn(|_| T::default())
    }
}

impl<K: Label, T: Clone> Clone for PerKey<K, T>
where
    K::Array<T>: Clone,
{
    fn clone(&self) -> Self {
        PerKey(self.0.clone())
    }
}

impl<K: Label, T: fmt::Debug> fmt::Debug for PerKey<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (k.label(), v))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    label_enum! {
        /// A test table, declared out of label order.
        enum Fruit {
            Pear => "pear",
            Apple => "apple",
            Fig => "fig",
        }
    }

    #[test]
    fn variants_labels_and_tables_agree() {
        assert_eq!(Fruit::COUNT, 3);
        assert_eq!(Fruit::ALL, [Fruit::Pear, Fruit::Apple, Fruit::Fig]);
        for (i, f) in Fruit::ALL.into_iter().enumerate() {
            assert_eq!(Label::index(f), i);
            assert_eq!(Fruit::from_label(f.label()), Some(f));
            assert_eq!(f.to_string(), f.label());
        }
        assert_eq!(Fruit::from_label("Pear"), None);
        let mut t = PerKey::<Fruit, usize>::from_fn(|f| f.label().len());
        t[Fruit::Fig] += 10;
        assert_eq!((t[Fruit::Pear], t[Fruit::Apple], t[Fruit::Fig]), (4, 5, 13));
        assert_eq!(t.values().sum::<usize>(), 22);
        assert_eq!(format!("{:?}", t.clone()), r#"{"pear": 4, "apple": 5, "fig": 13}"#);
    }
}
