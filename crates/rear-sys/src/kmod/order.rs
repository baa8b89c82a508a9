//! Load order: what modprobe would load for a set of modules, and in which order.
//!
//! A module comes after all its dependencies (`modules.dep` lists them all, transitively),
//! after the modules of its `softdep ... pre:` and before those of `post:`; each module once.
//! [`ModuleIndex::load_plan`] turns that sequence into steps that name the earlier steps each
//! one waits for, so the rescue system can load independent modules in parallel.

use std::collections::HashSet;

use super::index::ModuleIndex;
use super::normalize_name;

/// One module of a load plan (see [`ModuleIndex::load_plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'a> {
    /// Module name.
    pub name: &'a str,
    /// Path as in `modules.dep` (relative to the module directory unless absolute).
    pub path: &'a str,
    /// Earlier steps that must be loaded first (its dependencies): if one fails, so does this.
    pub needs: Vec<usize>,
    /// Earlier steps to be done first without being required (softdeps): `pre:` targets of
    /// this module and modules that name this one as `post:`.
    pub after: Vec<usize>,
}

impl ModuleIndex {
    /// The modules named by a module's soft dependencies, `pre:` and `post:`, resolved like
    /// modprobe resolves them (names or aliases; built-in and unknown ones dropped). All
    /// `softdep` lines of the module count (modprobe uses only the first; loading more soft
    /// dependencies is harmless and safer).
    pub fn softdeps(&self, name: &str) -> (Vec<&str>, Vec<&str>) {
        let key = normalize_name(name);
        let (pre, post) = self.softdep_ids(&key);
        let names = |v: Vec<usize>| {
            v.into_iter()
                .map(|i| self.modules[i].name.as_str())
                .collect()
        };
        (names(pre), names(post))
    }

    fn softdep_ids(&self, name: &str) -> (Vec<usize>, Vec<usize>) {
        let (mut pre, mut post) = (Vec::new(), Vec::new());
        for &l in self.softdeps_of.get(name).into_iter().flatten() {
            let line = &self.softdeps[l];
            for p in &line.pre {
                pre.extend(self.lookup_ids(p));
            }
            for p in &line.post {
                post.extend(self.lookup_ids(p));
            }
        }
        (pre, post)
    }

    /// The order in which modprobe would load these modules: each module's dependencies
    /// first (transitively, each once), then its `pre:` softdeps, the module, its `post:`
    /// softdeps. Names that are no loadable module (built-in, unknown) are skipped.
    pub fn load_order(&self, names: &[&str]) -> Vec<&str> {
        self.order_ids(names)
            .into_iter()
            .map(|i| self.modules[i].name.as_str())
            .collect()
    }

    fn order_ids(&self, names: &[&str]) -> Vec<usize> {
        let mut visited = vec![false; self.modules.len()];
        let mut out = Vec::new();
        for n in names {
            if let Some(i) = self.id(n) {
                self.visit(i, &mut visited, &mut out);
            }
        }
        out
    }

    fn visit(&self, id: usize, visited: &mut [bool], out: &mut Vec<usize>) {
        if visited[id] {
            return;
        }
        visited[id] = true;
        // modprobe walks the modules.dep line from right to left; each dependency brings its
        // own dependencies first, so any order of the line gives a valid result.
        for &d in self.modules[id].deps.iter().rev() {
            self.visit(d, visited, out);
        }
        let (pre, post) = self.softdep_ids(&self.modules[id].name);
        for p in pre {
            self.visit(p, visited, out);
        }
        out.push(id);
        for p in post {
            self.visit(p, visited, out);
        }
    }

    /// [`load_order`](Self::load_order) as steps that say which earlier steps each one
    /// waits for, so that independent modules can be loaded in parallel. Modules in `skip`
    /// (already loaded) are left out, with everything else kept.
    pub fn load_plan(&self, names: &[&str], skip: &HashSet<String>) -> Vec<Step<'_>> {
        let order: Vec<usize> = self
            .order_ids(names)
            .into_iter()
            .filter(|&i| !skip.contains(&self.modules[i].name))
            .collect();
        let mut pos = vec![usize::MAX; self.modules.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        let mut steps: Vec<Step<'_>> = order
            .iter()
            .map(|&i| Step {
                name: &self.modules[i].name,
                path: &self.modules[i].path,
                needs: Vec::new(),
                after: Vec::new(),
            })
            .collect();
        // Edges only point backwards in the sequential order, so the plan is acyclic even if
        // softdeps form a cycle.
        for (p, &i) in order.iter().enumerate() {
            let earlier = |j: usize| pos[j] < p;
            let mut needs: Vec<usize> = self.modules[i]
                .deps
                .iter()
                .filter(|&&d| earlier(d))
                .map(|&d| pos[d])
                .collect();
            let (pre, post) = self.softdep_ids(&self.modules[i].name);
            let mut after: Vec<usize> = pre
                .iter()
                .filter(|&&d| earlier(d))
                .map(|&d| pos[d])
                .collect();
            for q in post {
                if pos[q] != usize::MAX && pos[q] > p {
                    steps[pos[q]].after.push(p);
                }
            }
            needs.sort_unstable();
            needs.dedup();
            after.sort_unstable();
            after.dedup();
            steps[p].needs = needs;
            steps[p].after.extend(after);
        }
        for s in &mut steps {
            s.after.sort_unstable();
            s.after.dedup();
            let needs = &s.needs;
            s.after.retain(|a| !needs.contains(a));
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::super::index::tests::index;
    use super::*;

    #[test]
    fn load_order_deps_first_then_pre_softdeps() {
        let ix = index();
        assert_eq!(
            ix.load_order(&["ext4"]),
            [
                "jbd2",
                "mbcache",
                "crc16",
                "crc32c_generic",
                "crc32c_intel",
                "ext4"
            ]
        );
        assert_eq!(
            ix.load_order(&["virtio_blk", "virtio_pci", "loop", "nothing"]),
            ["virtio_ring", "virtio", "virtio_blk", "virtio_pci"]
        );
    }

    #[test]
    fn load_order_post_softdeps_after() {
        let ix = index();
        assert_eq!(
            ix.load_order(&["ipmi_msghandler"]),
            ["ipmi_msghandler", "ipmi_devintf"]
        );
        assert_eq!(
            ix.softdeps("jbd2"),
            (vec![], vec![]),
            "words before pre: ignored"
        );
    }

    #[test]
    fn load_plan_links_dependencies() {
        let ix = index();
        let skip: HashSet<String> = ["virtio_ring".to_string()].into();
        let plan = ix.load_plan(&["virtio_blk", "virtio_pci", "ipmi_msghandler"], &skip);
        let names: Vec<&str> = plan.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "virtio",
                "virtio_blk",
                "virtio_pci",
                "ipmi_msghandler",
                "ipmi_devintf"
            ]
        );
        assert_eq!(plan[1].needs, [0]);
        assert_eq!(plan[2].needs, [0]);
        assert_eq!(plan[3].needs, Vec::<usize>::new());
        assert_eq!(plan[4].needs, [3], "ipmi_devintf needs ipmi_msghandler");
        assert!(plan[4].after.is_empty(), "already in needs");
        let plan = ix.load_plan(&["ext4"], &HashSet::new());
        let ext4 = plan.iter().position(|s| s.name == "ext4").unwrap();
        assert_eq!(plan[ext4].needs, [0, 1, 2]);
        assert_eq!(plan[ext4].after, [3, 4]);
    }
}
