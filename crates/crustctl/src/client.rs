//! Connections to the CRI runtime and image services over unix sockets, with crictl's
//! timeout and debug behaviour.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where crustd listens unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "unix:///run/crust/crust.sock";

/// kubelet (and crictl) accept replies up to 16 MiB; tonic's default is 4 MiB.
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// Replies may be larger: ExecSync carries up to 16 MiB of stdout and 16 MiB of stderr.
const MAX_REPLY_SIZE: usize = 40 * 1024 * 1024;

/// Parses a CRI endpoint: `unix:///path/to.sock` or a bare path.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf> {
    let path = if let Some(rest) = endpoint.strip_prefix("unix://") {
        rest
    } else if let Some((scheme, _)) = endpoint.split_once("://") {
        bail!("endpoint {endpoint:?}: protocol {scheme:?} is not supported, only unix sockets are");
    } else {
        endpoint
    };
    if path.is_empty() {
        bail!("endpoint {endpoint:?} names no socket path");
    }
    Ok(PathBuf::from(path))
}

/// The innermost cause of a transport error: tonic's chain repeats the io error
/// ("transport error: No such file…: No such file…"), the io error says it all.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A failed RPC: prints as `<message> (<code>)`.
#[derive(Debug)]
pub struct RpcError(pub tonic::Status);

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.0.message();
        if message.is_empty() {
            write!(f, "{} ({:?})", self.0.code().description(), self.0.code())
        } else {
            write!(f, "{message} ({:?})", self.0.code())
        }
    }
}

impl std::error::Error for RpcError {}

impl RpcError {
    pub fn code(&self) -> tonic::Code {
        self.0.code()
    }
}

/// The global options every verb shares: endpoints, timeout, debug.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub runtime_endpoint: String,
    pub image_endpoint: String,
    /// Deadline for connecting and for each unary call (`-t`).
    pub timeout: Duration,
    pub debug: bool,
}

impl Ctx {
    pub async fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        let channel = self.connect(&self.runtime_endpoint).await?;
        Ok(RuntimeServiceClient::new(channel)
            .max_decoding_message_size(MAX_REPLY_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE))
    }

    pub async fn image(&self) -> Result<ImageServiceClient<Channel>> {
        let channel = self.connect(&self.image_endpoint).await?;
        Ok(ImageServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE))
    }

    async fn connect(&self, endpoint: &str) -> Result<Channel> {
        let path = parse_endpoint(endpoint)?;
        self.debug(format_args!("connect using endpoint {endpoint:?}"));
        let connector = tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        });
        // The authority is a placeholder: the connector ignores it.
        let channel = Endpoint::try_from("http://[::]:50051")?;
        let connect = channel.connect_with_connector(connector);
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(e)) => Err(anyhow!("{}", root_cause(&e)))
                .with_context(|| format!("connect endpoint {endpoint:?}")),
            Err(_) => Err(anyhow!("timed out after {:?}", self.timeout))
                .with_context(|| format!("connect endpoint {endpoint:?}")),
        }
    }

    /// Builds a request carrying the `-t` deadline for the server to see.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Runs one unary call under the `-t` deadline, logging request and reply with `-D`.
    pub async fn call<Req, Resp, F>(
        &self,
        name: &str,
        request: Req,
        f: impl FnOnce(tonic::Request<Req>) -> F,
    ) -> Result<Resp, RpcError>
    where
        Req: fmt::Debug,
        Resp: fmt::Debug,
        F: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let timeout = self.timeout;
        self.call_with_timeout(name, Some(timeout), self.request(request), f)
            .await
    }

    /// Like [`Ctx::call`], with an explicit deadline (`None`: wait as long as it takes).
    pub async fn call_with_timeout<Req, Resp, F>(
        &self,
        name: &str,
        timeout: Option<Duration>,
        request: tonic::Request<Req>,
        f: impl FnOnce(tonic::Request<Req>) -> F,
    ) -> Result<Resp, RpcError>
    where
        Req: fmt::Debug,
        Resp: fmt::Debug,
        F: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let shown = format!("{:?}", request.get_ref());
        self.invoke(name, timeout, request, &shown, f).await
    }

    /// Like [`Ctx::call_with_timeout`], logging `shown` with `-D` in place of the request
    /// (for requests that carry secrets).
    pub async fn invoke<Req, Resp, F>(
        &self,
        name: &str,
        timeout: Option<Duration>,
        request: tonic::Request<Req>,
        shown: &str,
        f: impl FnOnce(tonic::Request<Req>) -> F,
    ) -> Result<Resp, RpcError>
    where
        Resp: fmt::Debug,
        F: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.debug(format_args!("{name}Request: {shown}"));
        let response = match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, f(request)).await {
                Ok(result) => result,
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "{name} did not answer within {timeout:?}"
                ))),
            },
            None => f(request).await,
        };
        match response {
            Ok(response) => {
                let response = response.into_inner();
                self.debug(format_args!("{name}Response: {response:?}"));
                Ok(response)
            }
            Err(status) => {
                self.debug(format_args!("{name} failed: {status:?}"));
                // tonic enforces the grpc-timeout header itself and reports it as
                // Cancelled; it is a deadline.
                let status = match (status.code(), timeout) {
                    (tonic::Code::Cancelled, Some(timeout))
                        if status.message() == "Timeout expired" =>
                    {
                        tonic::Status::deadline_exceeded(format!(
                            "{name} did not answer within {timeout:?}"
                        ))
                    }
                    _ => status,
                };
                Err(RpcError(status))
            }
        }
    }

    pub fn debug(&self, message: fmt::Arguments<'_>) {
        if self.debug {
            eprintln!("DEBU {message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("unix:///run/crust/crust.sock").unwrap(),
            PathBuf::from("/run/crust/crust.sock")
        );
        assert_eq!(
            parse_endpoint("/tmp/x.sock").unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert_eq!(
            parse_endpoint("unix://rel/x.sock").unwrap(),
            PathBuf::from("rel/x.sock")
        );
        assert!(parse_endpoint("tcp://127.0.0.1:1234").is_err());
        assert!(parse_endpoint("unix://").is_err());
        assert!(parse_endpoint("").is_err());
    }

    #[test]
    fn rpc_error_display() {
        let e = RpcError(tonic::Status::not_found("image \"x\" not found"));
        assert_eq!(e.to_string(), "image \"x\" not found (NotFound)");
        let e = RpcError(tonic::Status::new(tonic::Code::Unimplemented, ""));
        assert!(e.to_string().ends_with("(Unimplemented)"));
    }

    #[tokio::test]
    async fn connect_failure_names_endpoint() {
        let ctx = Ctx {
            runtime_endpoint: "unix:///nonexistent/crust.sock".into(),
            image_endpoint: "unix:///nonexistent/crust.sock".into(),
            timeout: Duration::from_secs(2),
            debug: false,
        };
        let err = ctx.runtime().await.unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("connect endpoint \"unix:///nonexistent/crust.sock\""),
            "{text}"
        );
    }
}
