//! `val!`, `tup!` and `otab!`: nested values written as literals.

/// Builds a [`Val`](crate::Val) from a JSON-like literal.
///
/// `{k: v, ...}` makes a `Tab`, `[a, b, ...]` an `Arr`, `None` is `Val::None`, and any
/// other expression goes through `Val::from` (so `1` is an `I32`, Rust's default integer,
/// which equals `I64` 1). Keys are expressions (`"a"`, `1`, `(1, 2)` for a tuple key).
/// Nest [`tup!`](macro@crate::tup) and [`otab!`](macro@crate::otab) for tuples and ordered tables.
///
/// ```
/// use shmval::{val, Val};
/// let v = val!({"a": 1, "b": [1, 2.5, "x"], "c": None});
/// assert_eq!(v.to_string(), "{'a': 1, 'b': [1, 2.5, 'x'], 'c': None}");
/// assert_eq!(v["b"][2], "x");
/// ```
#[macro_export]
macro_rules! val {
    (@array [$($elems:expr,)*]) => { ::std::vec![$($elems,)*] };
    (@array [$($elems:expr),*]) => { ::std::vec![$($elems),*] };
    (@array [$($elems:expr,)*] None $($rest:tt)*) => {
        $crate::val!(@array [$($elems,)* $crate::Val::None] $($rest)*)
    };
    (@array [$($elems:expr,)*] [$($arr:tt)*] $($rest:tt)*) => {
        $crate::val!(@array [$($elems,)* $crate::val!([$($arr)*])] $($rest)*)
    };
    (@array [$($elems:expr,)*] {$($map:tt)*} $($rest:tt)*) => {
        $crate::val!(@array [$($elems,)* $crate::val!({$($map)*})] $($rest)*)
    };
    (@array [$($elems:expr,)*] $next:expr, $($rest:tt)*) => {
        $crate::val!(@array [$($elems,)* $crate::val!($next),] $($rest)*)
    };
    (@array [$($elems:expr,)*] $last:expr) => {
        $crate::val!(@array [$($elems,)* $crate::val!($last)])
    };
    (@array [$($elems:expr),*] , $($rest:tt)*) => {
        $crate::val!(@array [$($elems,)*] $($rest)*)
    };

    (@object $object:ident () () ()) => {};
    (@object $object:ident [$($key:tt)+] ($value:expr) , $($rest:tt)*) => {
        let _ = $object.insert($crate::Val::from($($key)+), $value);
        $crate::val!(@object $object () ($($rest)*) ($($rest)*));
    };
    (@object $object:ident [$($key:tt)+] ($value:expr)) => {
        let _ = $object.insert($crate::Val::from($($key)+), $value);
    };
    (@object $object:ident ($($key:tt)+) (: None $($rest:tt)*) $copy:tt) => {
        $crate::val!(@object $object [$($key)+] ($crate::Val::None) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: [$($arr:tt)*] $($rest:tt)*) $copy:tt) => {
        $crate::val!(@object $object [$($key)+] ($crate::val!([$($arr)*])) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: {$($map:tt)*} $($rest:tt)*) $copy:tt) => {
        $crate::val!(@object $object [$($key)+] ($crate::val!({$($map)*})) $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: $value:expr , $($rest:tt)*) $copy:tt) => {
        $crate::val!(@object $object [$($key)+] ($crate::val!($value)) , $($rest)*);
    };
    (@object $object:ident ($($key:tt)+) (: $value:expr) $copy:tt) => {
        $crate::val!(@object $object [$($key)+] ($crate::val!($value)));
    };
    (@object $object:ident ($($key:tt)*) ($tt:tt $($rest:tt)*) $copy:tt) => {
        $crate::val!(@object $object ($($key)* $tt) ($($rest)*) ($($rest)*));
    };

    (None) => { $crate::Val::None };
    ([]) => { $crate::Val::Arr(::std::vec::Vec::new()) };
    ([ $($tt:tt)+ ]) => { $crate::Val::Arr($crate::val!(@array [] $($tt)+)) };
    ({}) => { $crate::Val::tab() };
    ({ $($tt:tt)+ }) => {{
        let mut object = $crate::Tab::default();
        $crate::val!(@object object () ($($tt)+) ($($tt)+));
        $crate::Val::Tab(object)
    }};
    ($other:expr) => { $crate::Val::from($other) };
}

/// Builds a `Tup` from elements written as in [`val!`](macro@crate::val).
///
/// ```
/// use shmval::{tup, val};
/// assert_eq!(tup![1, "a", [2]].to_string(), "(1, 'a', [2])");
/// assert_eq!(tup![None].to_string(), "(None,)");
/// assert_eq!(tup![].to_string(), "()");
/// ```
#[macro_export]
macro_rules! tup {
    () => { $crate::Val::Tup(::std::vec::Vec::new()) };
    ($($tt:tt)+) => { $crate::Val::Tup($crate::val!(@array [] $($tt)+)) };
}

/// Builds an `OTab` from `key: value` entries written as in [`val!`](macro@crate::val), keeping
/// their order.
///
/// ```
/// use shmval::otab;
/// let v = otab!{"b": 1, "a": [2]};
/// assert_eq!(v.to_string(), "OrderedDict([('b', 1), ('a', [2])])");
/// ```
#[macro_export]
macro_rules! otab {
    () => { $crate::Val::otab() };
    ($($tt:tt)+) => {{
        let mut object = $crate::OTab::default();
        $crate::val!(@object object () ($($tt)+) ($($tt)+));
        $crate::Val::OTab(object)
    }};
}
