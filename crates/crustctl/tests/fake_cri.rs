//! Runs the crustctl binary against an in-process fake CRI server on a unix socket.
//!
//! The fake answers Version, Status and the image RPCs from memory; everything else
//! (ListContainers included) is Unimplemented, as a runtime without containers support
//! would answer.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_cri::v1 as cri;
use serde_json::Value;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

#[derive(Default)]
struct State {
    images: Vec<cri::Image>,
    last_pull: Option<cri::PullImageRequest>,
}

type Shared = Arc<Mutex<State>>;

fn image(id: &str, tags: &[&str], digests: &[&str], size: u64) -> cri::Image {
    cri::Image {
        id: id.to_owned(),
        repo_tags: tags.iter().map(|s| s.to_string()).collect(),
        repo_digests: digests.iter().map(|s| s.to_string()).collect(),
        size,
        ..Default::default()
    }
}

const BUSYBOX_ID: &str = "sha256:a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824";
const PAUSE_ID: &str = "sha256:e6f1816883972d4be47bd48879a08919b96afcd344132622e4d444987919323c";

fn seed() -> State {
    State {
        images: vec![
            image(
                PAUSE_ID,
                &["registry.k8s.io/pause:3.9"],
                &["registry.k8s.io/pause@sha256:7031c1b283388d2c2e09b57badb803c05ebed362dc88d84b480cc47f72a21097"],
                321_520,
            ),
            image(
                BUSYBOX_ID,
                &["docker.io/library/busybox:1.36", "docker.io/library/busybox:latest"],
                &["docker.io/library/busybox@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7"],
                2_155_133,
            ),
        ],
        last_pull: None,
    }
}

fn find<'a>(images: &'a [cri::Image], name: &str) -> Option<&'a cri::Image> {
    let qualified = if name.contains('/') {
        name.to_owned()
    } else {
        format!("docker.io/library/{name}")
    };
    let tagged = if qualified
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'))
    {
        qualified
    } else {
        format!("{qualified}:latest")
    };
    images.iter().find(|i| {
        i.id == name
            || i.id
                .strip_prefix("sha256:")
                .is_some_and(|id| id.starts_with(name) && name.len() >= 12)
            || i.repo_tags.contains(&tagged)
            || i.repo_digests.contains(&tagged)
    })
}

/// One unary method: decodes `Req`, runs `f`, encodes its reply.
struct Unary<F, Req>(Option<F>, PhantomData<fn(Req)>);

impl<F, Fut, Req, Resp> UnaryService<Req> for Unary<F, Req>
where
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<Result<Response<Resp>, Status>>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        let f = self.0.take().expect("called once");
        let fut = f(request.into_inner());
        Box::pin(async move { fut.await.map(Response::new) })
    }
}

fn unary<Req, Resp, F, Fut>(
    req: http::Request<Body>,
    f: F,
) -> BoxFuture<Result<http::Response<Body>, Infallible>>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default());
        Ok(grpc.unary(Unary(Some(f), PhantomData), req).await)
    })
}

fn route(
    state: Shared,
    req: http::Request<Body>,
) -> BoxFuture<Result<http::Response<Body>, Infallible>> {
    match req.uri().path() {
        "/runtime.v1.RuntimeService/Version" => unary(req, |_: cri::VersionRequest| async {
            Ok(cri::VersionResponse {
                version: "0.1.0".into(),
                runtime_name: "crust".into(),
                runtime_version: "0.1.0".into(),
                runtime_api_version: "v1".into(),
            })
        }),
        "/runtime.v1.RuntimeService/Status" => unary(req, |r: cri::StatusRequest| async move {
            let mut info = HashMap::new();
            if r.verbose {
                info.insert(
                    "config".to_owned(),
                    r#"{"root":"/var/lib/crust"}"#.to_owned(),
                );
            }
            Ok(cri::StatusResponse {
                status: Some(cri::RuntimeStatus {
                    conditions: vec![cri::RuntimeCondition {
                        r#type: "RuntimeReady".into(),
                        status: true,
                        ..Default::default()
                    }],
                }),
                info,
                runtime_handlers: vec![cri::RuntimeHandler {
                    name: "crun".into(),
                    features: None,
                }],
                features: None,
            })
        }),
        "/runtime.v1.ImageService/ListImages" => {
            unary(req, move |_: cri::ListImagesRequest| async move {
                Ok(cri::ListImagesResponse {
                    images: state.lock().unwrap().images.clone(),
                })
            })
        }
        "/runtime.v1.ImageService/ImageStatus" => {
            unary(req, move |r: cri::ImageStatusRequest| async move {
                let name = r.image.unwrap_or_default().image;
                if name == "slow" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let state = state.lock().unwrap();
                let image = find(&state.images, &name).cloned();
                let mut info = HashMap::new();
                if r.verbose && image.is_some() {
                    info.insert("info".to_owned(), r#"{"chainID":"sha256:1"}"#.to_owned());
                }
                Ok(cri::ImageStatusResponse { image, info })
            })
        }
        "/runtime.v1.ImageService/PullImage" => {
            unary(req, move |r: cri::PullImageRequest| async move {
                let name = r.image.clone().unwrap_or_default().image;
                let mut state = state.lock().unwrap();
                state.last_pull = Some(r);
                match find(&state.images, &name) {
                    Some(image) => Ok(cri::PullImageResponse {
                        image_ref: image.id.clone(),
                    }),
                    None => Err(Status::not_found(format!(
                        "failed to resolve reference {name:?}"
                    ))),
                }
            })
        }
        "/runtime.v1.ImageService/RemoveImage" => {
            unary(req, move |r: cri::RemoveImageRequest| async move {
                let name = r.image.unwrap_or_default().image;
                let mut state = state.lock().unwrap();
                let id = find(&state.images, &name).map(|i| i.id.clone());
                state.images.retain(|i| Some(&i.id) != id.as_ref());
                Ok(cri::RemoveImageResponse {})
            })
        }
        "/runtime.v1.ImageService/ImageFsInfo" => unary(req, |_: cri::ImageFsInfoRequest| async {
            Ok(cri::ImageFsInfoResponse {
                image_filesystems: vec![cri::FilesystemUsage {
                    timestamp: 1_700_000_000_000_000_000,
                    fs_id: Some(cri::FilesystemIdentifier {
                        mountpoint: "/var/lib/crust".into(),
                    }),
                    used_bytes: Some(cri::UInt64Value { value: 123_456_789 }),
                    inodes_used: Some(cri::UInt64Value { value: 42 }),
                }],
                container_filesystems: vec![],
            })
        }),
        _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
    }
}

macro_rules! fake_service {
    ($name:ident, $service:literal) => {
        #[derive(Clone)]
        struct $name(Shared);

        impl NamedService for $name {
            const NAME: &'static str = $service;
        }

        impl tower::Service<http::Request<Body>> for $name {
            type Response = http::Response<Body>;
            type Error = Infallible;
            type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: http::Request<Body>) -> Self::Future {
                route(self.0.clone(), req)
            }
        }
    };
}

fake_service!(FakeRuntime, "runtime.v1.RuntimeService");
fake_service!(FakeImages, "runtime.v1.ImageService");

struct Fake {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    state: Shared,
}

async fn start() -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("crust.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let state: Shared = Arc::new(Mutex::new(seed()));
    let server = tonic::transport::Server::builder()
        .add_service(FakeRuntime(state.clone()))
        .add_service(FakeImages(state.clone()))
        .serve_with_incoming(UnixListenerStream::new(listener));
    tokio::spawn(server);
    Fake {
        _dir: dir,
        socket,
        state,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn crustctl(socket: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_crustctl"))
        .arg("-r")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .env_remove("CONTAINER_RUNTIME_ENDPOINT")
        .env_remove("IMAGE_SERVICE_ENDPOINT")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_and_info() {
    let fake = start().await;
    let r = crustctl(&fake.socket, &["version"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "Version:  0.1.0\nRuntimeName:  crust\nRuntimeVersion:  0.1.0\nRuntimeApiVersion:  v1\n"
    );

    let r = crustctl(&fake.socket, &["info"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"]["conditions"][0]["type"], "RuntimeReady");
    assert_eq!(v["config"]["root"], "/var/lib/crust");
    assert_eq!(v["runtimeHandlers"][0]["name"], "crun");

    let r = crustctl(
        &fake.socket,
        &[
            "info",
            "-q",
            "-o",
            "go-template",
            "--template",
            "{{.status.conditions}}",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "[map[message: reason: status:true type:RuntimeReady]]\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_table_json_quiet() {
    let fake = start().await;
    let r = crustctl(&fake.socket, &["images"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "IMAGE                       TAG                 IMAGE ID            SIZE\n\
         docker.io/library/busybox   1.36                a416a98b71e22       2.16MB\n\
         docker.io/library/busybox   latest              a416a98b71e22       2.16MB\n\
         registry.k8s.io/pause       3.9                 e6f1816883972       322kB\n"
    );
    let r = crustctl(&fake.socket, &["images", "-q"]).await;
    assert_eq!(r.stdout, format!("{BUSYBOX_ID}\n{PAUSE_ID}\n"));
    let r = crustctl(&fake.socket, &["images", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["images"][1]["size"], "321520");
    assert_eq!(v["images"][1]["repoTags"][0], "registry.k8s.io/pause:3.9");
    let r = crustctl(&fake.socket, &["images", "-o", "yaml"]).await;
    assert!(
        r.stdout.starts_with("images:\n- id: sha256:a416"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspecti_found_and_missing() {
    let fake = start().await;
    let r = crustctl(&fake.socket, &["inspecti", "busybox"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["status"]["id"], BUSYBOX_ID);
    assert_eq!(v["status"]["size"], "2155133");
    assert_eq!(v["info"]["chainID"], "sha256:1");

    let r = crustctl(
        &fake.socket,
        &["inspecti", "busybox", "registry.k8s.io/pause:3.9"],
    )
    .await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);

    let r = crustctl(&fake.socket, &["inspecti", "nope"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "crustctl: no such image \"nope\" present\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_with_creds_and_errors() {
    let fake = start().await;
    let r = crustctl(
        &fake.socket,
        &["pull", "--creds", "user:pw", "-a", "k=v", "busybox"],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("Image is up to date for {BUSYBOX_ID}\n"));
    let pulled = fake.state.lock().unwrap().last_pull.clone().unwrap();
    let auth = pulled.auth.unwrap();
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("user", "pw")
    );
    assert_eq!(pulled.image.unwrap().annotations["k"], "v");

    let r = crustctl(&fake.socket, &["pull", "nope"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "crustctl: pulling image: failed to resolve reference \"nope\" (NotFound)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmi_and_prune() {
    let fake = start().await;
    let r = crustctl(&fake.socket, &["rmi", "busybox", "nope"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stdout,
        "Deleted: docker.io/library/busybox:1.36\nDeleted: docker.io/library/busybox:latest\n"
    );
    assert!(r.stderr.contains("no such image \"nope\""), "{}", r.stderr);
    assert!(
        r.stderr
            .ends_with("crustctl: unable to remove the image(s)\n"),
        "{}",
        r.stderr
    );

    // ListContainers is Unimplemented: nothing is in use, everything goes.
    let r = crustctl(&fake.socket, &["rmi", "--prune"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "Deleted: registry.k8s.io/pause:3.9\n");
    assert!(fake.state.lock().unwrap().images.is_empty());

    let r = crustctl(&fake.socket, &["rmi", "-a"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "No images to remove\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imagefsinfo_json_and_table() {
    let fake = start().await;
    let r = crustctl(&fake.socket, &["imagefsinfo"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["status"]["imageFilesystems"][0]["usedBytes"]["value"],
        "123456789"
    );
    assert_eq!(v["status"]["containerFilesystems"], serde_json::json!([]));
    let r = crustctl(&fake.socket, &["imagefsinfo", "-o", "table"]).await;
    assert!(r.stdout.contains("Disk[0]: 123.5MB\n"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_their_cause() {
    let fake = start().await;
    let r = crustctl(Path::new("/nonexistent/crust.sock"), &["version"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("crustctl: connect endpoint \"unix:///nonexistent/crust.sock\""),
        "{}",
        r.stderr
    );

    let r = crustctl(&fake.socket, &["-t", "300ms", "inspecti", "slow"]).await;
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("image status for \"slow\" request"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.ends_with("(DeadlineExceeded)\n"), "{}", r.stderr);
}
