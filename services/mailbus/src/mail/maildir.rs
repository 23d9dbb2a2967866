//! Maildir as Dovecot lays it out: the root's `cur/` and `new/` are INBOX, Maildir++ folders are
//! `.Sub.Folder` directories beside them (names in modified UTF-7, `.` the separator), a message's flags
//! are the letters after `:2,` in its file name (DRAFT, FLAGGED, PASSED, REPLIED, SEEN, TRASHED; `a`-`z`
//! the lines of the folder's `dovecot-keywords`), and its internal date is the file's mtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Folder, Source};

/// Maildir's standard flags and the IMAP flags they stand for (maildir.html, "Info semantics").
const STANDARD: [(char, &str); 5] =
    [('D', "\\Draft"), ('F', "\\Flagged"), ('R', "\\Answered"), ('S', "\\Seen"), ('T', "\\Deleted")];

/// The folders of a Maildir tree, INBOX first; each with its messages' files in name order.
pub fn folders(root: &Path) -> anyhow::Result<Vec<Folder>> {
    let mut folders = vec![folder(root, "INBOX".to_owned())?];
    let mut subfolders = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_prefix('.')) else { continue };
        if name.is_empty() || name == "." || !entry.path().join("cur").is_dir() {
            continue;
        }
        subfolders.push((folder_name(name), entry.path()));
    }
    subfolders.sort();
    for (name, path) in subfolders {
        folders.push(folder(&path, name)?);
    }
    Ok(folders)
}

/// `.Sub.Folder` (without its dot) as a mailbus name: `Sub/Folder`, modified UTF-7 decoded; a leading
/// `INBOX.` (some layouts nest everything under INBOX) is kept as INBOX's child.
pub fn folder_name(dotted: &str) -> String {
    let utf8 = mailbus_imap::render::from_utf7(dotted).unwrap_or_else(|| dotted.to_owned());
    utf8.replace('.', "/")
}

fn folder(dir: &Path, name: String) -> anyhow::Result<Folder> {
    let keywords = keywords(dir);
    let mut sources = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
        for entry in entries {
            let entry = entry?;
            sources.push(entry.path());
        }
    }
    // Dovecot's UID order where its dovecot-uidlist names the file, then the rest in name order (Dovecot's
    // and qmail's names start with the delivery time).
    let order = uid_order(dir);
    let key = |path: &PathBuf| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (order.get(base_name(&name)).copied().unwrap_or(u64::MAX), name)
    };
    sources.sort_by_cached_key(key);
    let sources = sources
        .into_iter()
        .map(|path| {
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let flags = flags(&file_name, &keywords);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            Source::File { path, flags, size }
        })
        .collect();
    Ok(Folder { name, sources })
}

/// A file name without its info (`:2,...`): what dovecot-uidlist names.
fn base_name(file_name: &str) -> &str {
    file_name.split([':', ';', '!']).next().unwrap_or(file_name)
}

/// The folder's `dovecot-uidlist`: each base name's UID.
fn uid_order(dir: &Path) -> std::collections::HashMap<String, u64> {
    let Ok(text) = std::fs::read_to_string(dir.join("dovecot-uidlist")) else { return Default::default() };
    parse_uidlist(&text)
}

/// `dovecot-uidlist` (version 3: a header line, then `<uid> [extensions] :<base name>`; version 1:
/// `<uid> <base name>`).
pub fn parse_uidlist(text: &str) -> std::collections::HashMap<String, u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let (uid, rest) = line.split_once(' ')?;
            let name = match rest.rsplit_once(" :") {
                Some((_, name)) => name,
                None => rest.strip_prefix(':').unwrap_or(rest),
            };
            Some((name.to_owned(), uid.parse().ok()?))
        })
        .collect()
}

/// The folder's `dovecot-keywords`: `<index> <keyword>` lines; index 0 is the letter `a`.
fn keywords(dir: &Path) -> BTreeMap<u32, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("dovecot-keywords")) else { return BTreeMap::new() };
    parse_keywords(&text)
}

pub fn parse_keywords(text: &str) -> BTreeMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let (index, keyword) = line.trim().split_once(' ')?;
            Some((index.parse().ok()?, keyword.trim().to_owned()))
        })
        .filter(|(index, keyword)| *index < 26 && !keyword.is_empty())
        .collect()
}

/// The IMAP flags a file name carries after `:2,` (`;2,` or `!2,` where `:` is not allowed).
pub fn flags(file_name: &str, keywords: &BTreeMap<u32, String>) -> Vec<String> {
    let Some(info) = [":2,", ";2,", "!2,"].iter().find_map(|sep| file_name.rsplit_once(sep).map(|(_, info)| info))
    else {
        return Vec::new();
    };
    let mut flags = Vec::new();
    for letter in info.chars() {
        if let Some((_, flag)) = STANDARD.iter().find(|(l, _)| *l == letter) {
            flags.push((*flag).to_owned());
        } else if letter.is_ascii_lowercase() {
            if let Some(keyword) = keywords.get(&(letter as u32 - 'a' as u32)) {
                flags.push(keyword.clone());
            }
        } else if letter == 'P' {
            flags.push("$Forwarded".to_owned());
        }
    }
    flags.sort();
    flags.dedup();
    flags
}

/// The internal date of a message file: its mtime, or when that is unusable (0, or unreadable) the Unix
/// time Dovecot's and qmail's unique names start with (`1733539200.M123P45.host`).
pub fn internal_date(path: &Path) -> Option<i64> {
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .filter(|&secs| secs > 0);
    mtime.or_else(|| {
        let name = path.file_name()?.to_str()?;
        name.split('.').next()?.parse::<i64>().ok().filter(|&secs| secs > 0)
    })
}

/// Writes one mailbox into a Maildir tree: INBOX is the root, another mailbox `.A.B`.
pub struct Writer {
    dir: PathBuf,
    keywords: Vec<String>,
    /// (UID, base name), for dovecot-uidlist.
    uids: Vec<(u32, String)>,
}

impl Writer {
    pub fn create(root: &Path, mailbox: &str) -> anyhow::Result<Writer> {
        let dir = if mailbox.eq_ignore_ascii_case("INBOX") {
            root.to_path_buf()
        } else {
            let dotted = mailbus_imap::render::to_utf7(mailbox).replace('/', ".");
            root.join(format!(".{dotted}"))
        };
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {}", dir.display()))?;
        }
        if dir != root {
            // Maildir++: marks a folder directory as such (Courier, Dovecot).
            std::fs::write(dir.join("maildirfolder"), b"")?;
        }
        Ok(Writer { dir, keywords: Vec::new(), uids: Vec::new() })
    }

    /// Writes a message (LF line ends, as Dovecot and mutt write) with its flags in the name and its
    /// internal date as mtime.
    pub fn write(&mut self, uid: u32, octets: &[u8], flags: &[String], internal_date: i64) -> anyhow::Result<()> {
        let lf = super::to_lf(octets);
        let letters = self.letters(flags);
        let base = format!("{internal_date}.M{uid}P0.mailbus,S={},W={}", lf.len(), octets.len());
        let name = format!("{base}:2,{letters}");
        let tmp = self.dir.join("tmp").join(&name);
        std::fs::write(&tmp, &lf).with_context(|| format!("writing {}", tmp.display()))?;
        let file = std::fs::File::options().write(true).open(&tmp)?;
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(internal_date.max(0) as u64);
        file.set_modified(when).with_context(|| format!("setting the mtime of {}", tmp.display()))?;
        drop(file);
        std::fs::rename(&tmp, self.dir.join("cur").join(&name))?;
        self.uids.push((uid, base));
        Ok(())
    }

    /// The letters of a file name's info, in ASCII order as maildir.html asks; a keyword gets the next
    /// free letter of `dovecot-keywords` (26 at most, as Dovecot; more are not kept in the name).
    fn letters(&mut self, flags: &[String]) -> String {
        let mut letters: Vec<char> = Vec::new();
        for flag in flags {
            if let Some((letter, _)) = STANDARD.iter().find(|(_, f)| f.eq_ignore_ascii_case(flag)) {
                letters.push(*letter);
            } else if flag.eq_ignore_ascii_case("$Forwarded") {
                letters.push('P');
            } else if !flag.starts_with('\\') {
                let index = match self.keywords.iter().position(|k| k == flag) {
                    Some(index) => index,
                    None => {
                        self.keywords.push(flag.clone());
                        self.keywords.len() - 1
                    }
                };
                if index < 26 {
                    letters.push((b'a' + index as u8) as char);
                }
            }
        }
        letters.sort();
        letters.dedup();
        letters.into_iter().collect()
    }

    /// Writes `dovecot-keywords` and `dovecot-uidlist` (so Dovecot keeps the UIDs, and an import keeps
    /// the order); returns the count of messages written.
    pub fn finish(self, uidvalidity: u32, uidnext: u32) -> anyhow::Result<u64> {
        let mut uidlist = format!("3 V{uidvalidity} N{uidnext}\n");
        for (uid, base) in &self.uids {
            uidlist.push_str(&format!("{uid} :{base}\n"));
        }
        std::fs::write(self.dir.join("dovecot-uidlist"), uidlist)?;
        if !self.keywords.is_empty() {
            let text: String = self.keywords.iter().take(26).enumerate().map(|(i, k)| format!("{i} {k}\n")).collect();
            std::fs::write(self.dir.join("dovecot-keywords"), text)?;
        }
        Ok(self.uids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_come_from_the_info_and_the_keywords_file() {
        let keywords = parse_keywords("0 $Forwarded\n1 Work\nbad line\n27 Toolate\n");
        assert_eq!(keywords.len(), 2);
        let all = flags("1733539200.M1P2.host,S=120,W=123:2,FRSab", &keywords);
        assert_eq!(all, ["$Forwarded", "Work", "\\Answered", "\\Flagged", "\\Seen"]);
        assert_eq!(flags("1733539200.M1P2.host:2,TDz", &keywords), ["\\Deleted", "\\Draft"]);
        assert!(flags("1733539200.M1P2.host", &keywords).is_empty(), "new/ has no info");
    }

    #[test]
    fn folder_names_decode_maildir_plus_plus() {
        assert_eq!(folder_name("Lists.rust"), "Lists/rust");
        assert_eq!(folder_name("Entw&APw-rfe"), "Entwürfe");
    }

    #[test]
    fn a_message_written_reads_back_with_its_flags_and_date() {
        let root = tempfile::tempdir().unwrap();
        let mut writer = Writer::create(root.path(), "Lists/rust").unwrap();
        let flags = vec!["\\Seen".to_owned(), "Work".to_owned(), "\\Answered".to_owned()];
        writer.write(9, b"Subject: x\r\n\r\nbody\r\n", &flags, 1_700_000_000).unwrap();
        writer.write(10, b"Subject: y\r\n\r\nearlier\r\n", &[], 1_600_000_000).unwrap();
        assert_eq!(writer.finish(1, 11).unwrap(), 2);
        let read = folders(root.path()).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].name, "Lists/rust");
        let Source::File { path, flags: read_flags, .. } = &read[1].sources[0] else { panic!("a file") };
        assert_eq!(read_flags, &["Work", "\\Answered", "\\Seen"]);
        assert_eq!(internal_date(path), Some(1_700_000_000));
        assert_eq!(std::fs::read(path).unwrap(), b"Subject: x\n\nbody\n");
        // UID order from dovecot-uidlist, though the second message's name sorts first by its date.
        let Source::File { path: second, .. } = &read[1].sources[1] else { panic!("a file") };
        assert_eq!(std::fs::read(second).unwrap(), b"Subject: y\n\nearlier\n");
    }

    #[test]
    fn dovecot_uidlist_gives_each_base_name_its_uid() {
        let order = parse_uidlist("3 V1 N3 G0a\n1 :1700.M1P1.host\n2 W120 :1600.M2P1.host\n");
        assert_eq!(order.get("1700.M1P1.host"), Some(&1));
        assert_eq!(order.get("1600.M2P1.host"), Some(&2));
        assert_eq!(base_name("1600.M2P1.host:2,S"), "1600.M2P1.host");
    }
}
