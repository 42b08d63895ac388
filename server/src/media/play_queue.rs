//! A leg's queue of prompts to play, the playing one kept in the leg itself.
//!
//! Every 20 ms a playing leg reads its current prompt. Kept only in a
//! `VecDeque`, that read went through the queue's own allocation: a cache
//! miss for every packet of every call (perf on an IVR node at 2,000 calls:
//! nearly all of `Leg::send`'s samples, 6 % of the node's CPU). Kept inline
//! it sits beside the leg's fields the packet reads anyway, and a play of
//! one prompt allocates nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use super::prompt::Prompt;

/// Prompts in play order. `front` is empty only when `rest` is.
#[derive(Default)]
pub(super) struct PlayQueue {
    front: Option<Arc<Prompt>>,
    rest: VecDeque<Arc<Prompt>>,
}

impl PlayQueue {
    pub(super) fn is_empty(&self) -> bool {
        self.front.is_none()
    }

    pub(super) fn front(&self) -> Option<&Arc<Prompt>> {
        self.front.as_ref()
    }

    pub(super) fn pop_front(&mut self) -> Option<Arc<Prompt>> {
        let front = self.front.take();
        self.front = self.rest.pop_front();
        front
    }

    pub(super) fn push_back(&mut self, prompt: Arc<Prompt>) {
        if self.front.is_none() {
            self.front = Some(prompt);
        } else {
            self.rest.push_back(prompt);
        }
    }

    pub(super) fn clear(&mut self) {
        self.front = None;
        self.rest.clear();
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Arc<Prompt>> {
        self.front.iter().chain(self.rest.iter())
    }
}

impl Extend<Arc<Prompt>> for PlayQueue {
    fn extend<I: IntoIterator<Item = Arc<Prompt>>>(&mut self, prompts: I) {
        for p in prompts {
            self.push_back(p);
        }
    }
}

impl FromIterator<Arc<Prompt>> for PlayQueue {
    fn from_iter<I: IntoIterator<Item = Arc<Prompt>>>(prompts: I) -> Self {
        let mut q = PlayQueue::default();
        q.extend(prompts);
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(samples: usize) -> Arc<Prompt> {
        Arc::new(Prompt::from_pcm("p", vec![0; samples]))
    }

    #[test]
    fn prompts_come_out_in_the_order_they_went_in() {
        let (a, b, c) = (prompt(160), prompt(320), prompt(480));
        let mut q: PlayQueue = [a.clone(), b.clone()].into_iter().collect();
        q.push_back(c.clone());
        let order: Vec<_> = q.iter().map(|p| p.pcm.len()).collect();
        assert_eq!(order, [160, 320, 480]);
        for want in [&a, &b, &c] {
            assert!(Arc::ptr_eq(q.front().unwrap(), want));
            assert!(Arc::ptr_eq(&q.pop_front().unwrap(), want));
        }
        assert!(q.is_empty() && q.pop_front().is_none());
        q.extend([b.clone()]);
        assert!(Arc::ptr_eq(q.front().unwrap(), &b));
        q.clear();
        assert!(q.is_empty() && q.iter().next().is_none());
    }
}
