//! `sites_file:`: the site list in a file of its own, YAML or CSV by extension, read as a stream
//! (one site's small tree at a time, never the whole file's) with every problem at its file:line.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::Problem;
use super::reader::Reader;
use super::sites::{OptionsPool, SiteDefaults, read_site};
use crate::domain::Site;

/// The sites of one file and the line each starts on, or the problems found in it.
#[derive(Default)]
pub struct FileSites {
    pub sites: Vec<Site>,
    /// `lines[i]` is the line `sites[i]` starts on, and `items[i]` its index among the file's
    /// items (for problems found later, such as a name another site already has).
    pub lines: Vec<u32>,
    pub items: Vec<u32>,
    /// When asked for (`sitemon sites apply`): every item's tree, valid or not, with the line it
    /// starts on, in the file's order (`trees[items[i]]` is the tree of `sites[i]`).
    pub trees: Vec<(u32, Value)>,
}

/// The path a problem of the `index`-th site of the file is reported under.
pub fn item_path(index: usize) -> String {
    format!("sites_file[{index}]")
}

/// Collects the sites of a file as its reader produces them, locating each site's problems.
pub(super) struct Sink<'r, 'e> {
    pub r: &'r mut Reader<'e>,
    defaults: &'r SiteDefaults,
    file: PathBuf,
    pub out: FileSites,
    /// Items seen, valid or not.
    pub count: usize,
    pool: OptionsPool,
    /// Keep each item's tree.
    keep: bool,
}

impl<'r, 'e> Sink<'r, 'e> {
    /// A problem of the file itself (not of one site's field).
    pub fn problem(&mut self, path: &str, at: Option<(usize, usize)>, message: impl Into<String>) {
        let mut p = Problem::new(path, message);
        p.at = at;
        p.file = Some(self.file.clone());
        self.r.problems.push(p);
    }

    /// One site's tree, starting on `line`; `locate` gives the place of a path within it.
    pub fn site(&mut self, item: &Value, line: usize, locate: impl Fn(&str) -> Option<(usize, usize)>) {
        let index = self.count;
        self.count += 1;
        let at = Place { file: &self.file, line, locate: &locate };
        if self.keep {
            self.out.trees.push((u32::try_from(line).unwrap_or(u32::MAX), item.clone()));
        }
        if let Some(site) = one(self.r, &mut self.pool, self.defaults, item, index, at) {
            self.out.push(site, line, index);
        }
    }

    /// Site trees (each with its line) read in a row, validated on two threads: validation is
    /// most of the time a million-row CSV takes, and this thread also reads the file, so the
    /// other takes two thirds. Problems and sites keep the file's order.
    pub fn rows(&mut self, rows: &[(Value, usize)]) {
        let first = self.count;
        self.count += rows.len();
        let split = rows.len() / 3;
        let (mine, theirs) = rows.split_at(split);
        if self.keep {
            let trees = rows.iter().map(|(v, line)| (u32::try_from(*line).unwrap_or(u32::MAX), v.clone()));
            self.out.trees.extend(trees);
        }
        let (env, defaults, file) = (self.r.env(), self.defaults, self.file.as_path());
        let validate = |rows: &[(Value, usize)], first: usize| {
            let mut r = Reader::new(env);
            let mut pool = OptionsPool::default();
            let mut out = FileSites::default();
            for (k, (item, line)) in rows.iter().enumerate() {
                let at = Place { file, line: *line, locate: &|_| None };
                if let Some(site) = one(&mut r, &mut pool, defaults, item, first + k, at) {
                    out.push(site, *line, first + k);
                }
            }
            (out, r.problems)
        };
        let parts = std::thread::scope(|s| {
            let theirs = s.spawn(|| validate(theirs, first + split));
            let mine = validate(mine, first);
            [mine, theirs.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))]
        });
        for (out, problems) in parts {
            self.r.problems.extend(problems);
            self.out.sites.extend(out.sites);
            self.out.lines.extend(out.lines);
            self.out.items.extend(out.items);
        }
    }
}

impl FileSites {
    fn push(&mut self, site: Site, line: usize, index: usize) {
        self.sites.push(site);
        self.lines.push(u32::try_from(line).unwrap_or(u32::MAX));
        self.items.push(u32::try_from(index).unwrap_or(u32::MAX));
    }
}

/// Where one site of the file stands, for its problems.
struct Place<'a> {
    file: &'a Path,
    line: usize,
    locate: &'a dyn Fn(&str) -> Option<(usize, usize)>,
}

/// The `index`-th site of the file, read from its tree; its problems go to `r` with their place.
fn one(
    r: &mut Reader,
    pool: &mut OptionsPool,
    defaults: &SiteDefaults,
    item: &Value,
    index: usize,
    at: Place,
) -> Option<Site> {
    let before = r.problems.len();
    let site = read_site(r, item, &item_path(index), defaults, pool);
    for p in &mut r.problems[before..] {
        p.at = (at.locate)(&p.path).or(Some((at.line, 0)));
        p.file = Some(at.file.to_owned());
    }
    site
}

/// Reads the sites of `file` (`.csv`, or `.yaml`/`.yml`); problems go to `r`, each with the
/// file and line it stands at. With `keep`, each valid site's tree is kept too.
pub fn read_sites_file(r: &mut Reader, file: &Path, defaults: &SiteDefaults, keep: bool) -> FileSites {
    let before = r.problems.len();
    let mut sink = Sink {
        r,
        defaults,
        file: file.to_owned(),
        out: FileSites::default(),
        count: 0,
        pool: OptionsPool::default(),
        keep,
    };
    let ext = file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let opened = std::fs::File::open(file);
    match (ext.as_deref(), opened) {
        (_, Err(e)) => sink.problem("", None, format!("cannot read the sites file: {e}")),
        (Some("csv"), Ok(f)) => super::sites_csv::read(&mut sink, f),
        (Some("yaml" | "yml"), Ok(f)) => super::sites_yaml::read(&mut sink, f),
        (_, Ok(_)) => {
            sink.problem("", None, "a sites file is `.csv`, `.yaml` or `.yml`; name it by its format")
        }
    }
    if sink.count == 0 && sink.r.problems.len() == before {
        sink.problem("", None, "the sites file holds no site; add at least one");
    }
    sink.out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{Config, ConfigError, Sites, parse_with};
    use crate::domain::ExpectedStatus;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret-token".to_owned())
    }

    /// The config `main` (in a temp dir, beside `name` holding `sites`), read with its sites.
    fn load(main: &str, name: &str, sites: &str) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), sites).unwrap();
        let file = dir.path().join("main.yaml");
        let r = parse_with(main, &file, &env, Sites::All);
        (dir, r)
    }

    /// Each problem as `file-name:line[:col]: path` (the message left out).
    fn places(e: &ConfigError) -> Vec<String> {
        e.to_string()
            .lines()
            .skip(1)
            .map(|l| {
                let l = l.trim();
                let name = Path::new(l.split(':').next().unwrap()).file_name().unwrap().to_string_lossy();
                let rest: Vec<&str> = l.split_once(':').unwrap().1.split(": ").collect();
                format!("{name}:{}: {}", rest[0], rest.get(1).copied().unwrap_or(""))
            })
            .collect()
    }

    #[test]
    fn yaml_file_sites_follow_the_inline_ones_with_the_defaults() {
        let (_d, r) = load(
            "defaults: {interval: 45s}\nsites:\n  - {name: inline, url: 'http://a/'}\nsites_file: s.yaml\n",
            "s.yaml",
            "# a comment\n- name: one\n  url: http://b/\n  headers: {Authorization: 'Bearer ${TOKEN}'}\n- &t {name: two, url: 'https://c/', interval: 10s, expected_status: [200, 204], follow_redirects: true}\n",
        );
        let c = r.unwrap();
        let names: Vec<_> = c.sites.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(names, ["inline", "one", "two"]);
        assert_eq!(c.sites[1].interval, Duration::from_secs(45), "defaults apply to file sites");
        assert_eq!(c.sites[1].headers[0].1.expose(), "Bearer s3cret-token", "${{VAR}} in a sites file");
        assert_eq!(c.sites[2].interval, Duration::from_secs(10));
        assert_eq!(c.sites[2].expected_status, ExpectedStatus::Codes([200, 204].into()));
        assert!(c.sites[2].follow_redirects);
        assert!(c.sites_file.unwrap().ends_with("s.yaml"));
    }

    #[test]
    fn yaml_file_problems_all_at_once_with_file_line_column() {
        let (_d, r) = load(
            "sites:\n  - {name: dup, url: 'http://a/'}\nsites_file: s.yml\nkafka: {topik: x}\n",
            "s.yml",
            "- name: ok\n  url: http://b/\n- name: bad\n  url: ftp://c/\n  timout: 5s\n- {name: dup, url: 'http://d/'}\n- name: late\n  url: http://e/\n  interval: soon\n",
        );
        let e = r.unwrap_err();
        assert_eq!(
            places(&e),
            [
                "main.yaml:4:9: kafka.topik",
                "main.yaml:4:1: kafka.bootstrap_servers",
                "s.yml:5:3: sites_file[1].timout",
                "s.yml:4:3: sites_file[1].url",
                "s.yml:9:3: sites_file[3].interval",
                "s.yml:6: sites_file[2].name",
            ],
            "{e}"
        );
        // Within the file, and the inline name repeated in it.
        let (_d, r) = load(
            "sites:\n  - {name: dup, url: 'http://a/'}\nsites_file: s.yml\n",
            "s.yml",
            "- name: ok\n  url: http://b/\n- {name: dup, url: 'http://d/'}\n- {name: ok, url: 'http://d/'}\n",
        );
        let e = r.unwrap_err();
        assert_eq!(places(&e), ["s.yml:3: sites_file[1].name", "s.yml:4: sites_file[2].name"], "{e}");
        assert!(e.to_string().contains("duplicate site name `dup`"), "{e}");
    }

    #[test]
    fn yaml_file_that_is_not_a_list_or_not_yaml() {
        let (_d, r) = load("sites_file: s.yaml\n", "s.yaml", "name: a\nurl: http://x/\n");
        let e = r.unwrap_err();
        assert!(places(&e)[0].starts_with("s.yaml:1: expected a list of sites"), "{e}");
        let (_d, r) = load("sites_file: s.yaml\n", "s.yaml", "- name: a\n  url: [http://x/\n");
        let e = r.unwrap_err();
        assert!(e.to_string().contains("not valid YAML"), "{e}");
        let (_d, r) = load("sites_file: s.yaml\n", "s.yaml", "# nothing\n");
        assert!(r.unwrap_err().to_string().contains("holds no site"));
        let (_d, r) = load("sites_file: s.json\n", "s.json", "[]");
        assert!(r.unwrap_err().to_string().contains("`.csv`, `.yaml` or `.yml`"));
        let (_d, r) = load("sites_file: missing.csv\n", "s.csv", "");
        assert!(r.unwrap_err().to_string().contains("cannot read the sites file"));
    }

    #[test]
    fn csv_file_rows_are_sites() {
        let (_d, r) = load(
            "sites_file: s.csv\n",
            "s.csv",
            "name,url,interval,expected_status,follow_redirects,headers.Authorization,pattern\n# a comment\nsite-1,http://a/x,10s,200|204,TRUE,Bearer ${TOKEN},\"ok, fine\"\nsite-2,https://b/,,,,,\n",
        );
        let c = r.unwrap();
        assert_eq!(c.sites.len(), 2);
        let (a, b) = (&c.sites[0], &c.sites[1]);
        assert_eq!(
            (a.id.as_str(), a.url.as_str(), a.interval),
            ("site-1", "http://a/x", Duration::from_secs(10))
        );
        assert_eq!(a.expected_status, ExpectedStatus::Codes([200, 204].into()));
        assert!(a.follow_redirects);
        assert_eq!(a.headers[0].0, "Authorization");
        assert_eq!(a.headers[0].1.expose(), "Bearer s3cret-token");
        assert!(a.pattern.as_ref().unwrap().is_match(b"all ok, fine"));
        assert_eq!(b.interval, Duration::from_secs(30), "an empty cell is the default");
        assert!(b.headers.is_empty() && b.pattern.is_none() && !b.follow_redirects);
    }

    #[test]
    fn csv_file_problems_all_at_once_with_file_and_line() {
        let (_d, r) = load(
            "sites:\n  - {name: site-1, url: 'http://a/'}\nsites_file: s.csv\n",
            "s.csv",
            "name,url,intervall,timeout\nsite-2,http://b/,10s,5s\nsite-3,gopher://c/,1s,5s\nsite-4,http://d/\nsite-5,http://e/,5s,soon\n",
        );
        let e = r.unwrap_err();
        assert_eq!(
            places(&e),
            [
                "s.csv:1: column 3",
                "s.csv:3: sites_file[1].url",
                "s.csv:4: sites_file[2]",
                "s.csv:5: sites_file[3].timeout",
            ],
            "{e}"
        );
        assert!(e.to_string().contains("did you mean `interval`?"), "{e}");
        let (_d, r) = load(
            "sites:\n  - {name: site-1, url: 'http://a/'}\nsites_file: s.csv\n",
            "s.csv",
            "name,url\nsite-2,http://b/\nsite-1,http://c/\n",
        );
        assert_eq!(places(&r.unwrap_err()), ["s.csv:3: sites_file[1].name"]);
        let (_d, r) = load("sites_file: s.csv\n", "s.csv", "url\nhttp://b/\n");
        let e = r.unwrap_err();
        assert!(e.to_string().contains("names no `name` column"), "{e}");
    }

    #[test]
    fn csv_lines_are_exact_with_crlf_comments_blanks_and_quoted_newlines() {
        let text = "\u{feff}name,url,body\r\n# prod\r\n\r\na,gopher://x/,\r\nb,http://x/,\"two\r\nlines\"\r\nc,ftp://y/,\r\n";
        let (_d, r) = load("sites_file: s.csv\n", "s.csv", text);
        let e = r.unwrap_err();
        assert_eq!(places(&e), ["s.csv:4: sites_file[0].url", "s.csv:7: sites_file[2].url"], "{e}");
        let (_d, r) = load(
            "sites_file: s.csv\n",
            "s.csv",
            "name,url,url,headers.Bad Name,headers.X\na,http://x/,http://y/,v,w\n",
        );
        let e = r.unwrap_err();
        assert_eq!(places(&e), ["s.csv:1: column 3", "s.csv:1: column 4"], "{e}");
    }

    #[test]
    fn a_sites_file_is_not_read_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.yaml");
        let c = parse_with("sites_file: nowhere.csv\n", &file, &env, Sites::Skip).unwrap();
        assert!(c.sites.is_empty());
        assert_eq!(c.sites_file.unwrap(), dir.path().join("nowhere.csv"));
    }
}
