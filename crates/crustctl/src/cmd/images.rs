//! `crustctl images`: lists images.

use std::io::Write;

use anyhow::{bail, Context, Result};
use clap::Args;
use k8s_cri::v1::{Image, ImageFilter, ImageSpec, ListImagesRequest, ListImagesResponse};
use regex::Regex;

use crate::client::Ctx;
use crate::output::{
    format_parser, human_size_with_precision, print_message, truncate_id, Format, Table,
};

const NONE: &str = "<none>";

#[derive(Args, Debug, Default)]
pub struct ImagesArgs {
    /// Only list images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub image: Option<String>,
    /// Show verbose info for images
    #[arg(short, long)]
    pub verbose: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(
        short,
        long = "filter",
        value_name = "FILTER",
        help = "Filter output based on provided conditions.\nAvailable filters: \n\
                * dangling=(boolean - true or false)\n\
                * reference=/regular expression/\n\
                * before=<image-name>[:<tag>]|<image id>|<image@digest>\n\
                * since=<image-name>[:<tag>]|<image id>|<image@digest>\n\
                Multiple filters can be combined together."
    )]
    pub filters: Vec<String>,
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = format_parser(&["json", "yaml", "table"]))]
    pub output: Format,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Show output without truncating the ID
    #[arg(long)]
    pub no_trunc: bool,
    /// Show whether the image is pinned or not
    #[arg(long)]
    pub pinned: bool,
}

pub async fn run(ctx: &Ctx, args: ImagesArgs, out: &mut dyn Write) -> Result<()> {
    let mut client = ctx.image().await?;
    let request = ListImagesRequest {
        filter: Some(ImageFilter {
            image: Some(ImageSpec {
                image: args.image.clone().unwrap_or_default(),
                ..Default::default()
            }),
        }),
    };
    let mut r = ctx
        .call("ListImages", request, |req| client.list_images(req))
        .await
        .context("listing images")?;
    sort_images(&mut r.images);
    if !args.filters.is_empty() && !r.images.is_empty() {
        r.images = filter_images(r.images, &args.filters).context("listing images")?;
    }
    match args.output {
        Format::Json | Format::Yaml => print_message(out, &r, args.output),
        _ => {
            out.write_all(render(&r, &args).as_bytes())?;
            Ok(())
        }
    }
}

/// The table (or `-q` IDs, or `-v` blocks) crictl prints.
pub fn render(r: &ListImagesResponse, args: &ImagesArgs) -> String {
    let mut table = Table::new();
    let mut text = String::new();
    if !args.verbose && !args.quiet {
        let mut header = vec!["IMAGE", "TAG"];
        if args.digests {
            header.push("DIGEST");
        }
        header.extend(["IMAGE ID", "SIZE"]);
        if args.pinned {
            header.push("PINNED");
        }
        table.add_row(header);
    }
    for image in &r.images {
        if args.quiet {
            text.push_str(&format!("{}\n", image.id));
            continue;
        }
        if !args.verbose {
            let (name, repo_digest) = normalize_repo_digest(&image.repo_digests);
            let size = human_size_with_precision(image.size as f64, 3);
            let (id, repo_digest) = if args.no_trunc {
                (image.id.clone(), repo_digest)
            } else {
                (
                    truncate_id(&image.id, "sha256:"),
                    truncate_id(&repo_digest, "sha256:"),
                )
            };
            for (repo, tag) in normalize_repo_tag_pairs(&image.repo_tags, &name) {
                let mut row = vec![repo, tag];
                if args.digests {
                    row.push(repo_digest.clone());
                }
                row.extend([id.clone(), size.clone()]);
                if args.pinned {
                    row.push(image.pinned.to_string());
                }
                table.add_row(row);
            }
            continue;
        }
        text.push_str(&format!("ID: {}\n", image.id));
        for tag in &image.repo_tags {
            text.push_str(&format!("RepoTags: {tag}\n"));
        }
        for digest in &image.repo_digests {
            text.push_str(&format!("RepoDigests: {digest}\n"));
        }
        if image.size != 0 {
            text.push_str(&format!("Size: {}\n", image.size));
        }
        if let Some(uid) = &image.uid {
            text.push_str(&format!("Uid: value:{}\n", uid.value));
        }
        if !image.username.is_empty() {
            text.push_str(&format!("Username: {}\n", image.username));
        }
        if image.pinned {
            text.push_str("Pinned: true\n");
        }
        text.push('\n');
    }
    text.push_str(&table.render());
    text
}

/// crictl's `imageByRef` order, sorted the way Go's sort does for short lists
/// (insertion sort), which stays well-defined although the order is not a total one.
pub fn sort_images(images: &mut [Image]) {
    fn less(a: &Image, b: &Image) -> bool {
        if let (Some(x), Some(y)) = (a.repo_tags.first(), b.repo_tags.first()) {
            return x < y;
        }
        if let (Some(x), Some(y)) = (a.repo_digests.first(), b.repo_digests.first()) {
            return x < y;
        }
        a.id < b.id
    }
    for i in 1..images.len() {
        let mut j = i;
        while j > 0 && less(&images[j], &images[j - 1]) {
            images.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// crictl's `normalizeRepoDigest`: (name, digest) of the first repo digest.
pub fn normalize_repo_digest(repo_digests: &[String]) -> (String, String) {
    let Some(first) = repo_digests.first() else {
        return (NONE.to_owned(), NONE.to_owned());
    };
    let parts: Vec<&str> = first.split('@').collect();
    match parts[..] {
        [name, digest] => (name.to_owned(), digest.to_owned()),
        _ => ("errorName".to_owned(), "errorRepoDigest".to_owned()),
    }
}

/// crictl's `normalizeRepoTagPair`: (repository, tag) per repo tag; an untagged image
/// shows under its digest's name with tag `<none>`.
pub fn normalize_repo_tag_pairs(repo_tags: &[String], image_name: &str) -> Vec<(String, String)> {
    if repo_tags.is_empty() {
        return vec![(image_name.to_owned(), NONE.to_owned())];
    }
    repo_tags
        .iter()
        .map(|repo_tag| match repo_tag.rsplit_once(':') {
            None => ("errorRepoTag".to_owned(), "errorRepoTag".to_owned()),
            Some((name, tag)) => {
                let name = if name == NONE { image_name } else { name };
                (name.to_owned(), tag.to_owned())
            }
        })
        .collect()
}

/// crictl's `filterImagesList`.
pub fn filter_images(images: Vec<Image>, filters: &[String]) -> Result<Vec<Image>> {
    let mut filtered = images;
    for filter in filters {
        if let Some(value) = filter.strip_prefix("before=") {
            filtered.reverse();
            filtered = filter_before_since(value, filtered);
            filtered.reverse();
        } else if let Some(value) = filter.strip_prefix("dangling=") {
            filtered.retain(|img| match value {
                "true" => img.repo_tags.is_empty(),
                "false" => !img.repo_tags.is_empty(),
                _ => false,
            });
        } else if let Some(value) = filter.strip_prefix("reference=") {
            let re =
                Regex::new(value).with_context(|| format!("invalid reference filter {value:?}"))?;
            filtered.retain(|img| {
                let (name, _) = normalize_repo_digest(&img.repo_digests);
                re.is_match(&name) || name == value
            });
        } else if let Some(value) = filter.strip_prefix("since=") {
            filtered = filter_before_since(value, filtered);
        } else {
            bail!("unknown filter flag: {filter}");
        }
    }
    Ok(filtered)
}

/// Keeps the images listed before the one `value` names (crictl's `filterByBeforeSince`).
fn filter_before_since(value: &str, images: Vec<Image>) -> Vec<Image> {
    let has_colon = value.contains(':');
    let has_at = value.contains('@');
    let mut kept = Vec::new();
    for img in images {
        let matches = match (has_colon, has_at) {
            (true, false) => {
                let (name, _) = normalize_repo_digest(&img.repo_digests);
                let pairs = normalize_repo_tag_pairs(&img.repo_tags, &name);
                format!("{}:{}", pairs[0].0, pairs[0].1) == value
            }
            // crictl compares the raw ID, which starts with `sha256:`; a bare hex
            // prefix matches here too.
            (false, false) => {
                img.id.starts_with(value)
                    || img
                        .id
                        .strip_prefix("sha256:")
                        .is_some_and(|id| id.starts_with(value))
            }
            (true, true) => {
                let Some(first) = img.repo_digests.first() else {
                    continue;
                };
                first.starts_with(value)
            }
            // crictl keeps nothing for a value with `@` but no `:`.
            (false, true) => continue,
        };
        if matches {
            break;
        }
        kept.push(img);
    }
    kept
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1 as cri;

    use super::*;

    fn img(id: &str, tags: &[&str], digests: &[&str], size: u64) -> Image {
        Image {
            id: id.into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size,
            ..Default::default()
        }
    }

    fn sample() -> ListImagesResponse {
        let mut images = vec![
            img(
                "sha256:e6f1816883972d4be47bd48879a08919b96afcd344132622e4d444987919323c",
                &["registry.k8s.io/pause:3.9"],
                &["registry.k8s.io/pause@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097"],
                321_520,
            ),
            img(
                "sha256:a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824",
                &["docker.io/library/busybox:1.36", "docker.io/library/busybox:latest"],
                &["docker.io/library/busybox@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7"],
                2_155_133,
            ),
            img(
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                &[],
                &["docker.io/library/alpine@sha256:c5b1261d6d3e43071626931fc004f70149baeba2c8ec672bd4f27761f8e1ad6b"],
                3_408_729,
            ),
        ];
        sort_images(&mut images);
        ListImagesResponse { images }
    }

    #[test]
    fn table() {
        let text = render(&sample(), &ImagesArgs::default());
        assert_eq!(
            text,
            "IMAGE                       TAG                 IMAGE ID            SIZE\n\
             docker.io/library/alpine    <none>              0123456789abc       3.41MB\n\
             docker.io/library/busybox   1.36                a416a98b71e22       2.16MB\n\
             docker.io/library/busybox   latest              a416a98b71e22       2.16MB\n\
             registry.k8s.io/pause       3.9                 e6f1816883972       322kB\n"
        );
    }

    #[test]
    fn table_with_digests_and_pinned() {
        let args = ImagesArgs {
            digests: true,
            pinned: true,
            ..Default::default()
        };
        let text = render(&sample(), &args);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "IMAGE                       TAG                 DIGEST              IMAGE ID            SIZE                PINNED"
        );
        assert_eq!(
            lines[4],
            "registry.k8s.io/pause       3.9                 7031c1b283388       e6f1816883972       322kB               false"
        );
    }

    #[test]
    fn no_trunc_quiet_verbose() {
        let args = ImagesArgs {
            no_trunc: true,
            ..Default::default()
        };
        assert!(render(&sample(), &args).contains(
            "sha256:a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824   2.16MB"
        ));
        let args = ImagesArgs {
            quiet: true,
            ..Default::default()
        };
        let text = render(&sample(), &args);
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("sha256:0123456789abcdef"));
        let mut r = sample();
        r.images[0].uid = Some(cri::Int64Value { value: 0 });
        let args = ImagesArgs {
            verbose: true,
            ..Default::default()
        };
        let text = render(&r, &args);
        assert!(text.starts_with(
            "ID: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
             RepoDigests: docker.io/library/alpine@sha256:c5b1261d6d3e43071626931fc004f70149baeba2c8ec672bd4f27761f8e1ad6b\n\
             Size: 3408729\nUid: value:0\n\n"
        ));
    }

    #[test]
    fn json_is_protojson() {
        let mut out = Vec::new();
        print_message(&mut out, &sample(), Format::Json).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{\n  \"images\": [\n    {\n      \"id\": \"sha256:0123"),
            "{text}"
        );
        assert!(text.contains("\"size\": \"3408729\""), "{text}");
        assert!(text.contains("\"repoTags\": []"), "{text}");
    }

    #[test]
    fn filters() {
        let ids = |images: &[Image]| {
            images
                .iter()
                .map(|i| i.id[7..11].to_owned())
                .collect::<Vec<_>>()
        };
        let all = sample().images;
        assert_eq!(
            ids(&filter_images(all.clone(), &["dangling=true".into()]).unwrap()),
            ["0123"]
        );
        assert_eq!(
            ids(&filter_images(all.clone(), &["dangling=false".into()]).unwrap()),
            ["a416", "e6f1"]
        );
        assert_eq!(
            ids(&filter_images(all.clone(), &["reference=busybox".into()]).unwrap()),
            ["a416"]
        );
        assert_eq!(
            ids(&filter_images(
                all.clone(),
                &["since=docker.io/library/busybox:1.36".into()]
            )
            .unwrap()),
            ["0123"]
        );
        assert_eq!(
            ids(&filter_images(
                all.clone(),
                &["before=docker.io/library/busybox:1.36".into()]
            )
            .unwrap()),
            ["e6f1"]
        );
        assert_eq!(
            ids(&filter_images(all.clone(), &["since=e6f18".into()]).unwrap()),
            ["0123", "a416"]
        );
        assert!(filter_images(all.clone(), &["bogus=1".into()]).is_err());
        assert!(filter_images(all, &["reference=(".into()]).is_err());
    }

    #[test]
    fn repo_tag_pairs() {
        assert_eq!(
            normalize_repo_tag_pairs(&["localhost:5000/a:v1".into()], "x"),
            [("localhost:5000/a".to_owned(), "v1".to_owned())]
        );
        assert_eq!(
            normalize_repo_tag_pairs(&[], "x"),
            [("x".to_owned(), "<none>".to_owned())]
        );
        assert_eq!(
            normalize_repo_digest(&[]),
            ("<none>".to_owned(), "<none>".to_owned())
        );
    }
}
