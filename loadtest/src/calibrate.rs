//! `calibrate-server`: a bare actix-web-actors websocket echo server, the floor every figure
//! of aisocial's connection path is read against (`connect --no-auth` measures its memory per
//! idle connection and handshake latency on the same machine, with the same client).

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, StreamHandler};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use actix_web_actors::ws;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:18095")]
    bind: String,
    /// Seconds after which the server stops by itself.
    #[arg(long, default_value_t = 600)]
    lifetime: u64,
}

/// Echoes text, answers pings, pings every 25 s like aisocial's sessions.
struct Echo {
    heard: Instant,
}

impl Actor for Echo {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_secs(25), |echo, ctx| {
            if echo.heard.elapsed() > Duration::from_secs(60) {
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.heard = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => ctx.text(text),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }
}

async fn socket(req: HttpRequest, stream: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    ws::start(
        Echo {
            heard: Instant::now(),
        },
        &req,
        stream,
    )
}

pub async fn serve(args: Args) -> anyhow::Result<()> {
    let server = HttpServer::new(|| App::new().route("/api/v1/ws", web::get().to(socket)))
        .workers(1)
        .bind(&args.bind)?
        .run();
    println!(
        "calibrate-server: listening on {} (pid {})",
        args.bind,
        std::process::id()
    );
    let handle = server.handle();
    actix_rt::spawn(async move {
        tokio::time::sleep(Duration::from_secs(args.lifetime)).await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}
