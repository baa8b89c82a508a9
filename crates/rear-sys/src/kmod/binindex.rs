//! kmod's binary index files (`modules.dep.bin`, `modules.alias.bin`, ...), written.
//!
//! modprobe reads these rather than the text files. The format, from kmod's
//! `libkmod/libkmod-index.c` (reader) and `tools/depmod.c` (writer):
//!
//! ```text
//! u32 magic   = 0xB007F457          all integers big-endian
//! u32 version = 0x00020001          (major 2, minor 1)
//! u32 root    = node offset of the root node
//! nodes, each at (offset & 0x0FFFFFFF), with flags in the high nibble of the offset saying
//! which parts it has:
//!   0x80000000 PREFIX  char prefix[]            NUL-terminated
//!   0x20000000 CHILDS  u8 first, u8 last, u32 child[last - first + 1]   (0 = no child)
//!   0x40000000 VALUES  u32 count, count x { u32 priority, char value[] NUL-terminated }
//! ```
//!
//! The tree is a radix trie (Patricia): the arc to a child is one character, the rest of the
//! child's label is its prefix; a node with values ends a key. Keys and values are 7-bit
//! ASCII. Nodes are written in post-order (children in character order, then the node), the
//! root last; an empty index is its header plus an empty root at offset 12. Values of one key
//! are sorted by priority (depmod uses the module's position in `modules.dep`); a value with
//! the same priority as an earlier one goes before it, as `index_add_value` does. The trie of
//! a set of keys is unique, so the bytes depend only on the keys, values and priorities.

use std::collections::BTreeMap;

use super::Error;

/// `INDEX_MAGIC`: "BOOTFAST", second version.
pub const MAGIC: u32 = 0xB007_F457;
/// `INDEX_VERSION`: major 2, minor 1.
pub const VERSION: u32 = 0x0002_0001;

const NODE_PREFIX: u32 = 0x8000_0000;
const NODE_VALUES: u32 = 0x4000_0000;
const NODE_CHILDS: u32 = 0x2000_0000;
const NODE_MASK: u32 = 0x0FFF_FFFF;

#[derive(Debug, Default)]
struct Node {
    prefix: Vec<u8>,
    /// (priority, value), kept in index order.
    values: Vec<(u32, String)>,
    /// Child node ids by arc character.
    children: BTreeMap<u8, usize>,
}

/// An index being built in memory; [`IndexBuilder::write`] gives the file's bytes.
#[derive(Debug)]
pub struct IndexBuilder {
    file: String,
    nodes: Vec<Node>,
}

impl IndexBuilder {
    /// An empty index; `file` names it in errors (`modules.alias.bin`).
    pub fn new(file: &str) -> Self {
        IndexBuilder {
            file: file.to_string(),
            nodes: vec![Node::default()],
        }
    }

    fn check(&self, text: &str) -> Result<(), Error> {
        if text.bytes().all(|b| b != 0 && b < 0x80) {
            Ok(())
        } else {
            Err(Error::NotAscii {
                file: self.file.clone(),
                text: text.to_string(),
            })
        }
    }

    /// Adds `value` under `key` (an empty key is ignored, as kmod cannot look it up).
    pub fn insert(&mut self, key: &str, value: &str, priority: u32) -> Result<(), Error> {
        self.check(key)?;
        self.check(value)?;
        let key = key.as_bytes();
        if key.is_empty() {
            return Ok(());
        }
        let mut node = 0usize;
        let mut i = 0usize;
        loop {
            // Make the node's prefix a prefix of the rest of the key, splitting it if needed.
            let common = self.nodes[node]
                .prefix
                .iter()
                .zip(&key[i..])
                .take_while(|(a, b)| a == b)
                .count();
            if common < self.nodes[node].prefix.len() {
                let old = std::mem::take(&mut self.nodes[node]);
                let arc = old.prefix[common];
                let head = old.prefix[..common].to_vec();
                let tail = Node {
                    prefix: old.prefix[common + 1..].to_vec(),
                    values: old.values,
                    children: old.children,
                };
                let tail_id = self.nodes.len();
                self.nodes.push(tail);
                let n = &mut self.nodes[node];
                n.prefix = head;
                n.children.insert(arc, tail_id);
            }
            i += common;
            if i == key.len() {
                add_value(&mut self.nodes[node].values, value, priority);
                return Ok(());
            }
            let arc = key[i];
            if let Some(&child) = self.nodes[node].children.get(&arc) {
                node = child;
                i += 1;
                continue;
            }
            let child_id = self.nodes.len();
            self.nodes.push(Node {
                prefix: key[i + 1..].to_vec(),
                values: vec![(priority, value.to_string())],
                children: BTreeMap::new(),
            });
            self.nodes[node].children.insert(arc, child_id);
            return Ok(());
        }
    }

    /// The index file's bytes.
    pub fn write(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        let root = self.write_node(0, &mut out);
        out[8..12].copy_from_slice(&root.to_be_bytes());
        out
    }

    fn write_node(&self, id: usize, out: &mut Vec<u8>) -> u32 {
        let node = &self.nodes[id];
        let mut child_offsets = Vec::new();
        let (first, last) = match (node.children.keys().next(), node.children.keys().last()) {
            (Some(&f), Some(&l)) => (f, l),
            _ => (0, 0),
        };
        if !node.children.is_empty() {
            for ch in first..=last {
                let off = match node.children.get(&ch) {
                    Some(&c) => self.write_node(c, out),
                    None => 0,
                };
                child_offsets.push(off);
            }
        }
        // Offsets are below 2^28 for any index under 256 MiB; kmod masks the same way.
        let mut offset = (out.len() as u32) & NODE_MASK;
        if !node.prefix.is_empty() {
            out.extend_from_slice(&node.prefix);
            out.push(0);
            offset |= NODE_PREFIX;
        }
        if !node.children.is_empty() {
            out.push(first);
            out.push(last);
            for off in child_offsets {
                out.extend_from_slice(&off.to_be_bytes());
            }
            offset |= NODE_CHILDS;
        }
        if !node.values.is_empty() {
            out.extend_from_slice(&(node.values.len() as u32).to_be_bytes());
            for (priority, value) in &node.values {
                out.extend_from_slice(&priority.to_be_bytes());
                out.extend_from_slice(value.as_bytes());
                out.push(0);
            }
            offset |= NODE_VALUES;
        }
        offset
    }
}

/// Inserts before the first value whose priority is not lower, as kmod's `index_add_value`.
fn add_value(values: &mut Vec<(u32, String)>, value: &str, priority: u32) {
    let at = values
        .iter()
        .position(|(p, _)| *p >= priority)
        .unwrap_or(values.len());
    values.insert(at, (priority, value.to_string()));
}

/// Every (key, priority, value) of an index file, in trie order; `None` if malformed.
///
/// The reverse of [`IndexBuilder::write`], for tests and for inspecting an image.
pub fn dump(bytes: &[u8]) -> Option<Vec<(String, u32, String)>> {
    let u32_at = |off: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            bytes.get(off..off + 4)?.try_into().ok()?,
        ))
    };
    if u32_at(0)? != MAGIC || u32_at(4)? >> 16 != VERSION >> 16 {
        return None;
    }
    let mut out = Vec::new();
    let mut stack = vec![(u32_at(8)?, Vec::<u8>::new())];
    while let Some((offset, mut key)) = stack.pop() {
        let mut p = (offset & NODE_MASK) as usize;
        let cstr = |p: &mut usize| -> Option<Vec<u8>> {
            let len = bytes.get(*p..)?.iter().position(|&b| b == 0)?;
            let s = bytes[*p..*p + len].to_vec();
            *p += len + 1;
            Some(s)
        };
        if offset & NODE_PREFIX != 0 {
            key.extend(cstr(&mut p)?);
        }
        let mut children = Vec::new();
        if offset & NODE_CHILDS != 0 {
            let first = *bytes.get(p)?;
            let last = *bytes.get(p + 1)?;
            p += 2;
            for ch in first..=last {
                let child = u32_at(p)?;
                p += 4;
                if child & NODE_MASK != 0 {
                    let mut k = key.clone();
                    k.push(ch);
                    children.push((child, k));
                }
            }
        }
        if offset & NODE_VALUES != 0 {
            let count = u32_at(p)?;
            p += 4;
            for _ in 0..count {
                let priority = u32_at(p)?;
                p += 4;
                let value = cstr(&mut p)?;
                out.push((
                    String::from_utf8(key.clone()).ok()?,
                    priority,
                    String::from_utf8(value).ok()?,
                ));
            }
        }
        stack.extend(children.into_iter().rev());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_empty_index_is_header_and_empty_root() {
        let bytes = IndexBuilder::new("x.bin").write();
        assert_eq!(
            bytes,
            [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12],
            "root offset 12, no flags"
        );
        assert_eq!(dump(&bytes).unwrap(), vec![]);
    }

    #[test]
    fn insert_splits_prefixes_and_round_trips() {
        let mut b = IndexBuilder::new("x.bin");
        for (i, k) in ["ask", "ate", "on", "once", "one"].iter().enumerate() {
            b.insert(k, &format!("v{i}"), i as u32).unwrap();
        }
        b.insert("on", "v9", 0).unwrap();
        let bytes = b.write();
        let got = dump(&bytes).unwrap();
        let want: Vec<(String, u32, String)> = [
            ("ask", 0, "v0"),
            ("ate", 1, "v1"),
            ("on", 0, "v9"),
            ("on", 2, "v2"),
            ("once", 3, "v3"),
            ("one", 4, "v4"),
        ]
        .iter()
        .map(|(k, p, v)| (k.to_string(), *p, v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn insert_is_order_independent() {
        let keys = ["pci:v1*", "pci:v2*", "pc", "usb:x", "p"];
        let mut a = IndexBuilder::new("a");
        let mut b = IndexBuilder::new("b");
        for (i, k) in keys.iter().enumerate() {
            a.insert(k, "m", i as u32).unwrap();
        }
        for (i, k) in keys.iter().enumerate().rev() {
            b.insert(k, "m", i as u32).unwrap();
        }
        assert_eq!(a.write(), b.write());
    }

    #[test]
    fn insert_rejects_non_ascii() {
        let e = IndexBuilder::new("modules.alias.bin")
            .insert("caf\u{e9}", "m", 0)
            .unwrap_err();
        assert!(e.to_string().starts_with("modules.alias.bin: "), "{e}");
    }
}
