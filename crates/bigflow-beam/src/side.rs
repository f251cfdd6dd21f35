//! Side inputs: a whole `PCollection` handed to every call of a DoFn.
//!
//! `as_singleton`, `as_iter` and `as_map` turn a collection into a view.
//! A view is a barrier: the runner completes every root feeding it before
//! it starts a transform that reads it. Views ignore windows (batch, global
//! window). Their contents are sorted by encoded bytes, so a side input
//! looks the same on every run.

use std::any::Any;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use anyhow::{Result, anyhow, bail};

use crate::coders::encode_to_vec;
use crate::graph::{Element, Env, Receiver};
use crate::window::WindowedValue;

/// A view of a collection usable as a side input. Views serialize (they
/// name a node of the pipeline), so a DoFn can keep them in its fields.
pub trait SideInput: Clone + Send + Sync + 'static {
    /// What the DoFn gets.
    type Value: Send + Sync + 'static;
    /// The view's node in the graph.
    fn node(&self) -> usize;
}

/// A side input of exactly one element (or a default when empty).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct SingletonView<T> {
    pub(crate) node: usize,
    pub(crate) _t: PhantomData<fn() -> T>,
}

/// A side input of all elements, in a stable order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct IterableView<T> {
    pub(crate) node: usize,
    pub(crate) _t: PhantomData<fn() -> T>,
}

/// A side input of key-value pairs as a map (keys must be unique).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct MapView<K, V> {
    pub(crate) node: usize,
    pub(crate) _t: PhantomData<fn() -> (K, V)>,
}

impl<T: Element> SideInput for SingletonView<T> {
    type Value = T;
    fn node(&self) -> usize {
        self.node
    }
}

impl<T: Element> SideInput for IterableView<T> {
    type Value = Vec<T>;
    fn node(&self) -> usize {
        self.node
    }
}

impl<K: Element + Hash + Eq, V: Element> SideInput for MapView<K, V> {
    type Value = HashMap<K, V>;
    fn node(&self) -> usize {
        self.node
    }
}

/// Elements collected by a view or an `assert_that`.
pub(crate) struct Collected<T> {
    items: Mutex<Vec<WindowedValue<T>>>,
}

impl<T: Element> Collected<T> {
    pub fn new() -> Self {
        Collected {
            items: Mutex::new(Vec::new()),
        }
    }

    /// Everything collected, sorted by encoded (window, value).
    #[cfg_attr(not(feature = "portable"), allow(dead_code))]
    pub fn extend(&self, items: Vec<WindowedValue<T>>) -> Result<()> {
        self.items
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .extend(items);
        Ok(())
    }

    pub fn sorted(&self) -> Result<Vec<WindowedValue<T>>> {
        let items = std::mem::take(&mut *self.items.lock().map_err(|_| anyhow!("poisoned"))?);
        let mut keyed: Vec<(Vec<u8>, WindowedValue<T>)> = items
            .into_iter()
            .map(|wv| (encode_to_vec(&(wv.window, wv.value.clone())), wv))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed.into_iter().map(|(_, wv)| wv).collect())
    }
}

/// A worker's buffer into [`Collected`].
pub(crate) struct CollectSink<T> {
    pub state: Arc<Collected<T>>,
    pub local: Vec<WindowedValue<T>>,
}

impl<T: Element> Receiver<T> for CollectSink<T> {
    fn start_bundle(&mut self) -> Result<()> {
        Ok(())
    }
    fn receive(&mut self, wv: WindowedValue<T>) -> Result<()> {
        self.local.push(wv);
        Ok(())
    }
    fn finish_bundle(&mut self) -> Result<()> {
        self.state
            .items
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .append(&mut self.local);
        Ok(())
    }
    fn teardown(&mut self) {}
}

/// Turns the collected elements of view `node` into its value.
pub(crate) type Materialize =
    Arc<dyn Fn(&Env, usize) -> Result<Arc<dyn Any + Send + Sync>> + Send + Sync>;

pub(crate) fn singleton<T: Element>(label: String, default: Option<T>) -> Materialize {
    Arc::new(move |env, node| {
        let mut items = env.state::<Collected<T>>(node)?.sorted()?;
        let v = match (items.len(), &default) {
            (1, _) => items.pop().expect("one").value,
            (0, Some(d)) => d.clone(),
            (n, _) => bail!(
                "side input '{label}' must hold exactly one element (as_singleton), but it holds {n}"
            ),
        };
        Ok(Arc::new(v) as Arc<dyn Any + Send + Sync>)
    })
}

pub(crate) fn iterable<T: Element>() -> Materialize {
    Arc::new(|env, node| {
        let items: Vec<T> = env
            .state::<Collected<T>>(node)?
            .sorted()?
            .into_iter()
            .map(|wv| wv.value)
            .collect();
        Ok(Arc::new(items) as Arc<dyn Any + Send + Sync>)
    })
}

pub(crate) fn map<K: Element + Hash + Eq, V: Element>(label: String) -> Materialize {
    Arc::new(move |env, node| {
        let mut m = HashMap::new();
        for wv in env.state::<Collected<(K, V)>>(node)?.sorted()? {
            let (k, v) = wv.value;
            if m.contains_key(&k) {
                bail!("side input '{label}' (as_map) has the key {k:?} more than once");
            }
            m.insert(k, v);
        }
        Ok(Arc::new(m) as Arc<dyn Any + Send + Sync>)
    })
}
