//! Combiners for `combine_per_key` and `combine_globally`.
//!
//! A [`CombineFn`] folds inputs into an accumulator, merges accumulators and
//! extracts the output, so the DirectRunner *lifts* it: each worker combines
//! what it sees before the shuffle and only accumulators cross it. Built in:
//! [`Count`], [`Sum`], [`Mean`], [`Min`], [`Max`] and [`Top`]; implement the
//! trait for your own.

use std::marker::PhantomData;

use crate::coders::Coded;
use crate::graph::Element;

/// An associative, commutative aggregation.
pub trait CombineFn: Clone + Send + Sync + 'static {
    /// What is combined.
    type In: Element;
    /// The partial result; a remote runner moves it between workers with its coder.
    type Acc: Coded + Clone + Send + 'static;
    /// The result.
    type Out: Element;

    /// An empty accumulator.
    fn create(&self) -> Self::Acc;
    /// Folds one input in.
    fn add_input(&self, acc: &mut Self::Acc, input: Self::In);
    /// Folds another accumulator in.
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result of an accumulator.
    fn extract(&self, acc: Self::Acc) -> Self::Out;
    /// What `combine_globally` gives for an empty input (`None`: nothing).
    fn empty_output(&self) -> Option<Self::Out> {
        Some(self.extract(self.create()))
    }
}

macro_rules! phantom_new {
    ($name:ident) => {
        impl<T> $name<T> {
            /// The combiner.
            pub fn new() -> Self {
                $name(PhantomData)
            }
        }
        impl<T> Default for $name<T> {
            fn default() -> Self {
                Self::new()
            }
        }
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                Self::new()
            }
        }
        impl<T> std::fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    };
}

/// How many inputs.
pub struct Count<T>(PhantomData<fn() -> T>);
phantom_new!(Count);

impl<T: Element> CombineFn for Count<T> {
    type In = T;
    type Acc = i64;
    type Out = i64;
    fn create(&self) -> i64 {
        0
    }
    fn add_input(&self, acc: &mut i64, _input: T) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut i64, other: i64) {
        *acc += other;
    }
    fn extract(&self, acc: i64) -> i64 {
        acc
    }
}

/// Numbers that [`Sum`] and [`Mean`] add.
pub trait Number: Element + Copy + Default + std::ops::Add<Output = Self> {
    /// As a float, for means.
    fn as_f64(self) -> f64;
}
impl Number for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
}
impl Number for i32 {
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}
impl Number for f64 {
    fn as_f64(self) -> f64 {
        self
    }
}

/// The sum of the inputs.
pub struct Sum<T>(PhantomData<fn() -> T>);
phantom_new!(Sum);

impl<T: Number> CombineFn for Sum<T> {
    type In = T;
    type Acc = T;
    type Out = T;
    fn create(&self) -> T {
        T::default()
    }
    fn add_input(&self, acc: &mut T, input: T) {
        *acc = *acc + input;
    }
    fn merge(&self, acc: &mut T, other: T) {
        *acc = *acc + other;
    }
    fn extract(&self, acc: T) -> T {
        acc
    }
}

/// The arithmetic mean (NaN for no inputs, as Beam).
pub struct Mean<T>(PhantomData<fn() -> T>);
phantom_new!(Mean);

impl<T: Number> CombineFn for Mean<T> {
    type In = T;
    type Acc = (f64, i64);
    type Out = f64;
    fn create(&self) -> (f64, i64) {
        (0.0, 0)
    }
    fn add_input(&self, acc: &mut (f64, i64), input: T) {
        acc.0 += input.as_f64();
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (f64, i64), other: (f64, i64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn extract(&self, acc: (f64, i64)) -> f64 {
        if acc.1 == 0 {
            f64::NAN
        } else {
            acc.0 / acc.1 as f64
        }
    }
}

/// The smallest input (no output for an empty global input).
pub struct Min<T>(PhantomData<fn() -> T>);
phantom_new!(Min);

/// The largest input (no output for an empty global input).
pub struct Max<T>(PhantomData<fn() -> T>);
phantom_new!(Max);

macro_rules! extreme {
    ($name:ident, $better:expr) => {
        impl<T: Element + PartialOrd + Default> CombineFn for $name<T> {
            type In = T;
            type Acc = Option<T>;
            type Out = T;
            fn create(&self) -> Option<T> {
                None
            }
            fn add_input(&self, acc: &mut Option<T>, input: T) {
                let better: fn(&T, &T) -> bool = $better;
                match acc {
                    Some(cur) if !better(&input, cur) => {}
                    _ => *acc = Some(input),
                }
            }
            fn merge(&self, acc: &mut Option<T>, other: Option<T>) {
                if let Some(o) = other {
                    self.add_input(acc, o);
                }
            }
            fn extract(&self, acc: Option<T>) -> T {
                // Only an empty global combine has no value; `empty_output`
                // keeps that case from emitting.
                acc.unwrap_or_default()
            }
            fn empty_output(&self) -> Option<T> {
                None
            }
        }
    };
}
extreme!(Min, |a, b| a < b);
extreme!(Max, |a, b| a > b);

/// The `n` largest (or smallest) inputs, best first.
pub struct Top<T> {
    n: usize,
    largest: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Top<T> {
    fn clone(&self) -> Self {
        Top {
            n: self.n,
            largest: self.largest,
            _t: PhantomData,
        }
    }
}

impl<T> Top<T> {
    /// The `n` largest.
    pub fn largest(n: usize) -> Self {
        Top {
            n,
            largest: true,
            _t: PhantomData,
        }
    }
    /// The `n` smallest.
    pub fn smallest(n: usize) -> Self {
        Top {
            n,
            largest: false,
            _t: PhantomData,
        }
    }
}

impl<T: Element + PartialOrd> Top<T> {
    fn trim(&self, v: &mut Vec<T>) {
        let largest = self.largest;
        v.sort_by(|a, b| {
            let o = a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal);
            if largest { o.reverse() } else { o }
        });
        v.truncate(self.n);
    }
}

impl<T: Element + PartialOrd> CombineFn for Top<T> {
    type In = T;
    type Acc = Vec<T>;
    type Out = Vec<T>;
    fn create(&self) -> Vec<T> {
        Vec::new()
    }
    fn add_input(&self, acc: &mut Vec<T>, input: T) {
        acc.push(input);
        if acc.len() >= self.n.saturating_mul(2).max(16) {
            self.trim(acc);
        }
    }
    fn merge(&self, acc: &mut Vec<T>, other: Vec<T>) {
        acc.extend(other);
        self.trim(acc);
    }
    fn extract(&self, mut acc: Vec<T>) -> Vec<T> {
        self.trim(&mut acc);
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold<C: CombineFn>(c: &C, parts: Vec<Vec<C::In>>) -> C::Out {
        let mut total = c.create();
        for p in parts {
            let mut acc = c.create();
            for x in p {
                c.add_input(&mut acc, x);
            }
            c.merge(&mut total, acc);
        }
        c.extract(total)
    }

    #[test]
    fn builtins_fold_and_merge() {
        assert_eq!(
            fold(
                &Count::<String>::new(),
                vec![vec!["a".into()], vec!["b".into(), "c".into()]]
            ),
            3
        );
        assert_eq!(fold(&Sum::<i64>::new(), vec![vec![1, 2], vec![3]]), 6);
        assert_eq!(fold(&Mean::<i64>::new(), vec![vec![1, 2], vec![6]]), 3.0);
        assert!(fold(&Mean::<f64>::new(), vec![]).is_nan());
        assert_eq!(fold(&Min::<i64>::new(), vec![vec![5, 2], vec![9]]), 2);
        assert_eq!(fold(&Max::<i64>::new(), vec![vec![5, 2], vec![9]]), 9);
        assert_eq!(Min::<i64>::new().empty_output(), None);
        let top: Vec<i64> = fold(&Top::largest(2), vec![(0..40).collect(), vec![100, -1]]);
        assert_eq!(top, vec![100, 39]);
        let bottom: Vec<i64> = fold(&Top::smallest(3), vec![(0..40).collect(), vec![100, -1]]);
        assert_eq!(bottom, vec![-1, 0, 1]);
    }
}
