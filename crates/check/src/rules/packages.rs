//! What package-manager commands install, and whether they pin versions: the parts of
//! hadolint's DL3008, DL3013, DL3016 and DL3018 that read one command, with hadolint's specs as
//! tests.

use super::shellwords::Command;

/// Whether `cmd` is `prog sub ...` for one of `progs`.
pub(super) fn is(cmd: &Command, progs: &[&str], sub: &str) -> bool {
    let p = cmd.program();
    p.first()
        .is_some_and(|n| progs.contains(&n.rsplit('/').next().unwrap_or(n)))
        && p.iter()
            .skip(1)
            .find(|w| !w.starts_with('-'))
            .is_some_and(|w| w == sub)
}

pub(super) fn is_pip_install(cmd: &Command) -> bool {
    if is(cmd, &["pip", "pip2", "pip3"], "install") {
        return true;
    }
    let p = cmd.program();
    p.first().is_some_and(|n| n.starts_with("python"))
        && p.get(1).is_some_and(|w| w == "-m")
        && p.get(2).is_some_and(|w| w.starts_with("pip"))
        && p.get(3).is_some_and(|w| w == "install")
}

/// The packages an `apt-get install` names without a version (hadolint's DL3008).
pub(super) fn apt_unpinned(cmd: &Command) -> Vec<&str> {
    operands(cmd, "install", &["-o", "-t", "--target-release"])
        .into_iter()
        .filter(|p| !p.contains('=') && !p.ends_with(".deb") && !p.starts_with('$'))
        .collect()
}

/// The packages an `apk add` names without a version (hadolint's DL3018).
pub(super) fn apk_unpinned(cmd: &Command) -> Vec<&str> {
    operands(
        cmd,
        "add",
        &["-t", "--virtual", "-X", "--repository", "--root", "-p"],
    )
    .into_iter()
    .filter(|p| !p.contains(['=', '~']) && !p.ends_with(".apk") && !p.starts_with('$'))
    .collect()
}

/// The packages a `pip install` names without a version (hadolint's DL3013): none when it
/// installs from a requirements or constraints file.
pub(super) fn pip_unpinned(cmd: &Command) -> Vec<&str> {
    const VALUED: &[&str] = &[
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "-e",
        "--editable",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "-f",
        "--find-links",
        "--platform",
        "--python-version",
        "--build",
        "--trusted-host",
        "--src",
        "--upgrade-strategy",
    ];
    if ["-r", "--requirement", "-c", "--constraint"]
        .iter()
        .any(|f| cmd.has_flag(f))
    {
        return Vec::new();
    }
    operands(cmd, "install", VALUED)
        .into_iter()
        .filter(|p| {
            if p.starts_with('$') || *p == "." {
                return false;
            }
            // A VCS URL is pinned by `@ref` in its path.
            if let Some((_, rest)) = p.split_once("://") {
                return p.starts_with("git+")
                    && !rest
                        .split_once('/')
                        .is_some_and(|(_, path)| path.contains('@'));
            }
            let local = p.contains('/')
                || [".whl", ".tar.gz", ".zip", ".tar.bz2"]
                    .iter()
                    .any(|x| p.ends_with(x));
            !local && !p.contains(['=', '<', '>', '~', '@', '!'])
        })
        .collect()
}

/// The packages an `npm install` names without a version (hadolint's DL3016); a bare
/// `npm install` reads package.json and its lockfile.
pub(super) fn npm_unpinned(cmd: &Command) -> Vec<&str> {
    let Some(sub) = ["install", "i", "add"]
        .into_iter()
        .find(|s| is(cmd, &["npm"], s))
    else {
        return Vec::new();
    };
    operands(
        cmd,
        sub,
        &[
            "--prefix",
            "--registry",
            "--loglevel",
            "--cache",
            "--userconfig",
        ],
    )
    .into_iter()
    .filter(|p| {
        if p.starts_with('$') {
            return false;
        }
        // git URLs are pinned by `#ref`.
        if p.contains("://") {
            return p.starts_with("git") && !p.contains('#');
        }
        let path = ["/", "./", "../", "~/"].iter().any(|x| p.starts_with(x));
        let tarball = [".tar", ".tar.gz", ".tgz"].iter().any(|x| p.ends_with(x));
        let versioned = match p.strip_prefix('@') {
            Some(scoped) => scoped.contains('@'),
            None => p.contains('@'),
        };
        !path && !tarball && !versioned
    })
    .collect()
}

/// Operands after the subcommand, skipping the values of the given options.
fn operands<'a>(cmd: &'a Command, sub: &str, valued: &[&str]) -> Vec<&'a str> {
    let p = cmd.program();
    let Some(start) = p.iter().position(|w| w == sub) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut skip = false;
    for w in &p[start + 1..] {
        if skip {
            skip = false;
            continue;
        }
        if w.starts_with('-') {
            skip = valued.contains(&w.as_str());
            continue;
        }
        out.push(w.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::shellwords::commands;

    fn first(text: &str) -> Command {
        commands(text).into_iter().next().unwrap()
    }

    /// hadolint's DL3013 spec (test/Hadolint/Rule/DL3013Spec.hs), as (command, flagged).
    #[test]
    fn pip_pins_as_hadolint_specifies() {
        for (cmd, flagged) in [
            ("pip2 install MySQL_python", true),
            ("pip3 install MySQL_python", true),
            ("pip3 install MySQL_python==1.2.2", false),
            ("pip3 install mypkg.whl", false),
            ("pip3 install mypkg.tar.gz", false),
            ("pip install -r requirements.txt", false),
            ("pip install --requirement requirements.txt", false),
            ("pip install .", false),
            ("pip install MySQL_python", true),
            ("pip install MySQL_python~=1.2.2", false),
            ("pip install MySQL_python===1.2.2", false),
            ("pip install --ignore-installed MySQL_python==1.2.2", false),
            ("pip3 install --build /opt/yamllint yamllint==1.20.0", false),
            ("pip3 install --prefix /opt/yamllint yamllint==1.20.0", false),
            ("pip3 install --root /opt/yamllint yamllint==1.20.0", false),
            ("pip3 install --target /opt/yamllint yamllint==1.20.0", false),
            ("pip3 install --trusted-host host example==1.2.2", false),
            ("python -m pip install example==1.2.2", false),
            ("python -m pip install example", true),
            ("python -m pip install --index-url url example", true),
            ("pip install git+https://github.com/rtfd/r-ext.git@0.6-alpha#egg=r-ext", false),
            ("pip install git+https://github.com/rtfd/read-ext.git#egg=read-ext", true),
            ("pip install 'alabaster>=0.7'", false),
            ("pip install 'alabaster<0.7'", false),
            ("pip install 'alabaster!=0.7'", false),
            ("pip install MySQL_python==1.2.2 --user", false),
            ("pip install MySQL_python==1.2.2 --disable-pip-version-check", false),
            ("pip install --index-url https://eg.com/foo foobar==1.0.0", false),
            ("pip install --index-url https://eg.com/foo --extra-index-url https://ex-eg.io/foo foobar==1.0.0", false),
            ("pip install MySQL_python==1.2.2 --no-cache-dir", false),
            ("pip install pykafka --constraint http://foo.bar.baz", false),
            ("pip install pykafka -c http://foo.bar.baz", false),
        ] {
            let c = first(cmd);
            assert!(is_pip_install(&c), "{cmd}");
            assert_eq!(!pip_unpinned(&c).is_empty(), flagged, "{cmd}");
        }
    }

    /// hadolint's DL3008 spec (test/Hadolint/Rule/DL3008Spec.hs): any apt-get install flagged.
    #[test]
    fn apt_pins_as_hadolint_specifies() {
        for (text, flagged) in [
            ("apt-get update && apt-get install python", true),
            ("apt-get update  && apt-get -yqq --no-install-recommends install nodejs=0.10  && rm -rf /var/lib/apt/lists/*", false),
            ("apt-get update && apt-get install --no-install-recommends -y python-demjson=2.2.2* wget=1.16.1* git=1:2.5.0* ruby=1:2.1.*", false),
            ("apt-get install -y python=1.2.2", false),
            ("apt-get install ./wkhtmltox_0.12.5-1.bionic_amd64.deb", false),
            ("apt-get -y --no-install-recommends install nodejs=0.10", false),
            ("set -e && echo \"deb http://http.debian.net/debian jessie-backports main\" > /etc/apt/sources.list.d/jessie-backports.list && apt-get update && apt-get install -y --no-install-recommends -t jessie-backports openjdk-8-jdk=8u131-b11-1~bpo8+1 && rm -rf /var/lib/apt/lists/*", false),
        ] {
            let got = commands(text)
                .iter()
                .filter(|c| is(c, &["apt-get"], "install"))
                .any(|c| !apt_unpinned(c).is_empty());
            assert_eq!(got, flagged, "{text}");
        }
    }

    /// hadolint's DL3018 spec (test/Hadolint/Rule/DL3018Spec.hs).
    #[test]
    fn apk_pins_as_hadolint_specifies() {
        for (text, flagged) in [
            ("apk add flex", true),
            ("apk add flex=2.6.4-r1", false),
            ("apk add --no-cache git~2.52.0", false),
            ("apk add --no-cache flex=2.6.4-r1  && pip install -r requirements.txt", false),
            ("apk add --no-cache flex=2.6.4-r1 libffi=3.2.1-r3 python2=2.7.13-r1 libbz2=1.0.6-r5", false),
            ("apk add --no-cache flex=2.6.4-r1 libffi python2=2.7.13-r1 libbz2=1.0.6-r5", true),
            ("apk add --virtual build-dependencies python-dev=1.1.1 build-base=2.2.2 wget=3.3.3 && pip install -r requirements.txt && python setup.py install && apk del build-dependencies", false),
            ("apk add --no-cache --repository https://nl.alpinelinux.org/alpine/edge/testing flow=0.78.0-r0", false),
            ("apk add --no-cache --repository=https://nl.alpinelinux.org/alpine/edge/testing flow=0.78.0-r0", false),
            ("apk add --no-cache -X https://nl.alpinelinux.org/alpine/edge/testing flow=0.78.0-r0", false),
            ("apk add mypackage-1.1.1.apk", false),
        ] {
            let got = commands(text)
                .iter()
                .filter(|c| is(c, &["apk"], "add"))
                .any(|c| !apk_unpinned(c).is_empty());
            assert_eq!(got, flagged, "{text}");
        }
    }

    /// hadolint's DL3016 spec (test/Hadolint/Rule/DL3016Spec.hs), as (command, flagged).
    #[test]
    fn npm_pins_as_hadolint_specifies() {
        for (cmd, flagged) in [
            ("npm install", false),
            ("npm install --progress=false", false),
            ("npm install express@4.1.1", false),
            ("npm install @myorg/privatepackage@\">=0.1.0\"", false),
            ("npm install express@\"4.1.1\" sax@0.1.1", false),
            ("npm install --global express@\"4.1.1\"", false),
            ("npm install -g express@\"4.1.1\"", false),
            ("npm install package-v1.2.3.tar", false),
            ("npm install package-v1.2.3.tar.gz", false),
            ("npm install package-v1.2.3.tgz", false),
            ("npm install /folder", false),
            ("npm install ./folder", false),
            ("npm install ../folder", false),
            ("npm install ~/folder", false),
            (
                "npm install git+ssh://git@github.com:npm/npm.git#v1.0.27",
                false,
            ),
            (
                "npm install git+http://isaacs@github.com/npm/npm#semver:^5.0",
                false,
            ),
            (
                "npm install git+https://isaacs@github.com/npm/npm.git#v1.0.27",
                false,
            ),
            ("npm install git://github.com/npm/npm.git#v1.0.27", false),
            ("npm run --crazy install", false),
            (
                "npm install @myorg/privatepackage@\">=0.1.0 <0.2.0\"",
                false,
            ),
            ("npm install express", true),
            ("npm install @myorg/privatepackage", true),
            ("npm install express sax@0.1.1", true),
            ("npm install --global express", true),
            ("npm install git+ssh://git@github.com:npm/npm.git", true),
            ("npm install git+http://isaacs@github.com/npm/npm", true),
            (
                "npm install git+https://isaacs@github.com/npm/npm.git",
                true,
            ),
            ("npm install git://github.com/npm/npm.git", true),
            ("npm install --loglevel verbose sax@0.1.1", false),
            (
                "npm install --registry https://example.com sax@0.1.1",
                false,
            ),
            ("npm install --registry https://example.com express", true),
            ("npm install --registry=https://example.com express", true),
        ] {
            assert_eq!(!npm_unpinned(&first(cmd)).is_empty(), flagged, "{cmd}");
        }
    }
}
