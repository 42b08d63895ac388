//! Browser legs: WebRTC (webrtc-rs: ICE, DTLS-SRTP, RTCP feedback) joined to
//! the media engine over a loopback RTP socket pair.
//!
//! A browser leg is an ordinary engine leg whose peer is a local relay: the
//! relay decrypts SRTP from the browser and hands plain RTP to the leg, and
//! encrypts what the leg sends. Prompts, recording, DTMF, bridging and
//! transcoding therefore work on browser legs unchanged. The relay costs two
//! loopback datagrams per packet; browser legs are agents and callers on a
//! softphone, not trunks, so the engine's hot path stays free of crypto.

pub mod agents;
pub mod limits;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_PCMA, MIME_TYPE_PCMU, MIME_TYPE_TELEPHONE_EVENT,
};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::{APIBuilder, API};
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};
use webrtc::util::Marshal;

use crate::codec::Format;
use crate::sip::sdp;

#[derive(Debug, Error)]
pub enum WebRtcError {
    #[error("webrtc: {0}")]
    Stack(#[from] webrtc::Error),
    #[error("no audio codec in common with the browser")]
    NoCommonCodec,
    #[error("relay socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the browser's SDP: {0}")]
    Sdp(String),
}

/// The WebRTC stack, configured once for the node.
pub struct WebRtc {
    api: API,
    pub agents: agents::Agents,
    /// Browser calls in progress, by call id, with the agent that placed
    /// each (for hanging up over HTTP: an agent ends only its own).
    pub calls:
        std::sync::Mutex<std::collections::HashMap<String, (Arc<RTCPeerConnection>, String)>>,
    /// Each agent's calls at once and offers per minute.
    pub limits: limits::AgentLimits,
}

/// A connected browser leg: its peer connection and what the engine leg needs.
pub struct BrowserMedia {
    pub pc: Arc<RTCPeerConnection>,
    /// Our SDP (answer or offer), with ICE candidates gathered.
    pub local_sdp: String,
    /// The relay's plain-RTP address: the engine leg's remote.
    pub relay: SocketAddr,
    pub format: Format,
    pub dtmf_pt: Option<u8>,
    /// Fires once when the browser is gone (closed, failed, disconnected).
    pub closed: mpsc::Receiver<()>,
    /// The engine -> browser relay task: it waits on its socket forever
    /// once the leg is gone, so it ends with this value.
    relay_task: tokio::task::AbortHandle,
}

impl Drop for BrowserMedia {
    fn drop(&mut self) {
        self.relay_task.abort();
    }
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str, pt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        capability: RTCRtpCodecCapability {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
        ..Default::default()
    }
}

impl WebRtc {
    /// `ice_ip`: the address browsers reach the node's media on.
    pub fn new(ice_ip: IpAddr, advertise: Option<IpAddr>) -> Result<WebRtc, WebRtcError> {
        let mut media = MediaEngine::default();
        for c in [
            codec(MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1", 111),
            codec(MIME_TYPE_PCMU, 8000, 0, "", 0),
            codec(MIME_TYPE_PCMA, 8000, 0, "", 8),
            codec(MIME_TYPE_TELEPHONE_EVENT, 48000, 0, "", 110),
            codec(MIME_TYPE_TELEPHONE_EVENT, 8000, 0, "", 126),
        ] {
            media.register_codec(c, RTPCodecType::Audio)?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media)?;
        let mut settings = SettingEngine::default();
        settings.set_network_types(vec![if ice_ip.is_ipv6() {
            NetworkType::Udp6
        } else {
            NetworkType::Udp4
        }]);
        if ice_ip.is_loopback() {
            settings.set_include_loopback_candidate(true);
        }
        if !ice_ip.is_unspecified() {
            settings.set_ip_filter(Box::new(move |ip| ip == ice_ip));
        }
        if let Some(public) = advertise {
            settings.set_nat_1to1_ips(vec![public.to_string()], RTCIceCandidateType::Host);
        }
        let api = APIBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .build();
        Ok(WebRtc {
            api,
            agents: agents::Agents::default(),
            calls: Default::default(),
            limits: Default::default(),
        })
    }

    /// Answers a browser's offer; media is relayed to the engine leg at `engine`.
    pub async fn answer(
        &self,
        offer: String,
        engine: SocketAddr,
    ) -> Result<BrowserMedia, WebRtcError> {
        let peer = self.peer(engine).await?;
        let pc = peer.pc.clone();
        let answered = async {
            pc.set_remote_description(RTCSessionDescription::offer(offer)?)
                .await?;
            let answer = pc.create_answer(None).await?;
            let mut gathered = pc.gathering_complete_promise().await;
            pc.set_local_description(answer).await?;
            let _ = gathered.recv().await;
            Self::finish(peer, true).await
        }
        .await;
        // A peer connection is not closed by dropping it: every failure closes
        // what the offer opened (ICE sockets, DTLS, its tasks).
        if answered.is_err() {
            let _ = pc.close().await;
        }
        answered
    }

    /// Makes an offer for calling a browser; `complete` takes its answer.
    pub async fn offer(&self, engine: SocketAddr) -> Result<PendingOffer, WebRtcError> {
        let peer = self.peer(engine).await?;
        let pc = peer.pc.clone();
        let made = async {
            let offer = pc.create_offer(None).await?;
            let mut gathered = pc.gathering_complete_promise().await;
            pc.set_local_description(offer).await?;
            let _ = gathered.recv().await;
            Ok::<_, WebRtcError>(())
        }
        .await;
        if let Err(e) = made {
            let _ = pc.close().await;
            return Err(e);
        }
        let sdp = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default();
        Ok(PendingOffer { peer, sdp })
    }

    /// A peer connection with our audio track, its relay socket, and the
    /// browser's audio already forwarded to the engine leg at `engine`.
    async fn peer(&self, engine: SocketAddr) -> Result<Peer, WebRtcError> {
        let pc = Arc::new(
            self.api
                .new_peer_connection(RTCConfiguration::default())
                .await?,
        );
        let peer = Self::wire(pc.clone(), engine).await;
        if peer.is_err() {
            let _ = pc.close().await;
        }
        peer
    }

    /// Adds our track and the relays to a new peer connection.
    async fn wire(pc: Arc<RTCPeerConnection>, engine: SocketAddr) -> Result<Peer, WebRtcError> {
        let track = Arc::new(TrackLocalStaticRTP::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                ..Default::default()
            },
            "audio".to_owned(),
            "hookline".to_owned(),
        ));
        let sender = pc
            .add_track(track.clone() as Arc<dyn TrackLocal + Send + Sync>)
            .await?;
        // RTCP from the browser must be read for the interceptors (NACK, reports) to run.
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while sender.read(&mut buf).await.is_ok() {}
        });
        let (closed_tx, closed) = mpsc::channel(1);
        pc.on_peer_connection_state_change(Box::new(move |state| {
            if matches!(
                state,
                RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
                    | RTCPeerConnectionState::Disconnected
            ) {
                let _ = closed_tx.try_send(());
            }
            Box::pin(async {})
        }));
        let relay = Arc::new(UdpSocket::bind(SocketAddr::new(loopback(engine), 0)).await?);
        // Browser -> engine: plain RTP (audio and telephone-event) to the leg.
        let to_engine = relay.clone();
        let engine_addr = SocketAddr::new(loopback(engine), engine.port());
        let event_pts: Arc<std::sync::OnceLock<(Vec<u8>, u8)>> = Default::default();
        let pts = event_pts.clone();
        pc.on_track(Box::new(move |remote, _, _| {
            let sock = to_engine.clone();
            let events = pts.clone();
            tokio::spawn(async move {
                while let Ok((mut pkt, _)) = remote.read_rtp().await {
                    // Browsers pick either telephone-event clock; the leg knows one.
                    if let Some((pts, to)) = events.get() {
                        if pts.contains(&pkt.header.payload_type) {
                            pkt.header.payload_type = *to;
                        }
                    }
                    if let Ok(bytes) = pkt.marshal() {
                        let _ = sock.send_to(&bytes, engine_addr).await;
                    }
                }
            });
            Box::pin(async {})
        }));
        Ok(Peer {
            pc,
            track,
            closed,
            relay,
            event_pts,
        })
    }

    /// Starts relaying the engine's audio once the SDP exchange is done.
    async fn finish(peer: Peer, we_answered: bool) -> Result<BrowserMedia, WebRtcError> {
        let Peer {
            pc,
            track,
            closed,
            relay,
            event_pts,
        } = peer;
        let local_sdp = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .unwrap_or_default();
        // The codec both use is the first of the answer's list.
        let answer = if we_answered {
            local_sdp.clone()
        } else {
            pc.remote_description()
                .await
                .map(|d| d.sdp)
                .unwrap_or_default()
        };
        let neg = sdp::negotiate(answer.as_bytes()).map_err(|e| match e {
            sdp::SdpError::NoCommonCodec => WebRtcError::NoCommonCodec,
            e => WebRtcError::Sdp(e.to_string()),
        })?;
        let relay_addr = relay.local_addr()?;
        if let Some(dtmf) = neg.dtmf_pt {
            let _ = event_pts.set((telephone_event_pts(&answer), dtmf));
        }
        // Engine -> browser: only audio (the track rewrites the payload type
        // to the negotiated codec, which a telephone-event packet is not).
        let audio_pt = neg.codec.payload_type();
        let from_engine = relay.clone();
        let out = track.clone();
        let relay_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok(n) = from_engine.recv(&mut buf).await {
                if n > 12 && buf[1] & 0x7f == audio_pt && out.write(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        Ok(BrowserMedia {
            pc,
            local_sdp,
            relay: relay_addr,
            format: neg.codec,
            dtmf_pt: neg.dtmf_pt,
            closed,
            relay_task: relay_task.abort_handle(),
        })
    }
}

/// An offer sent to a browser agent, waiting for its answer.
pub struct PendingOffer {
    peer: Peer,
    pub sdp: String,
}

/// A peer connection being set up.
struct Peer {
    pc: Arc<RTCPeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    closed: mpsc::Receiver<()>,
    relay: Arc<UdpSocket>,
    /// telephone-event payload types in the answer, and the one the leg uses.
    event_pts: Arc<std::sync::OnceLock<(Vec<u8>, u8)>>,
}

impl PendingOffer {
    /// Applies the browser's answer and starts the relay.
    pub async fn complete(self, answer: String) -> Result<BrowserMedia, WebRtcError> {
        let pc = self.peer.pc.clone();
        let done = async {
            pc.set_remote_description(RTCSessionDescription::answer(answer)?)
                .await?;
            WebRtc::finish(self.peer, false).await
        }
        .await;
        if done.is_err() {
            let _ = pc.close().await;
        }
        done
    }

    pub async fn cancel(self) {
        let _ = self.peer.pc.close().await;
    }
}

/// Payload types an SDP maps to telephone-event (any clock).
fn telephone_event_pts(sdp: &str) -> Vec<u8> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a=rtpmap:"))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, enc)| enc.to_ascii_lowercase().starts_with("telephone-event/"))
        .filter_map(|(pt, _)| pt.parse().ok())
        .collect()
}

/// The relay talks to the engine over loopback when the engine listens on
/// all interfaces (or on loopback already).
fn loopback(engine: SocketAddr) -> IpAddr {
    match engine.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip if ip.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ip => ip,
    }
}
