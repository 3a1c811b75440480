//! The swarm's task: turns swarm events into [`NetEvent`]s and handle commands into swarm calls.
//!
//! Admission: a connection counts as a peer only once identify shows the same network id;
//! a peer with another id is banned and disconnected at once. Misbehaviour (undecodable
//! requests, forged or malformed announcements, bad payloads) costs reputation; past the
//! threshold the peer is banned too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::codec::{ChunkRequest, ChunkResponse};
use crate::content::{ContentProvider, chunk_of};
use crate::frame::FrameAck;
use crate::protocol::Protocols;
use crate::reputation::{Offence, Reputation, Verdict};
use crate::traffic::Traffic;
use crate::{Announcement, Error, NetEvent, Result, identity};

/// How often penalties decay and Kademlia refreshes.
const TICK: Duration = Duration::from_secs(10);
/// Penalty points forgiven per tick.
const FORGIVE_PER_TICK: i64 = 5;

/// A request from a [`crate::NetworkHandle`] to the swarm task.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        topic: String,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    Subscribe {
        topic: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Request {
        peer: PeerId,
        request: ChunkRequest,
        reply: oneshot::Sender<Result<ChunkResponse>>,
    },
    SendFrame {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<()>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<()>>,
    },
    Report {
        peer: PeerId,
        offence: Offence,
    },
}

/// The state owned by the swarm task.
pub(crate) struct Driver {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) protocols: Protocols,
    pub(crate) provider: Arc<dyn ContentProvider>,
    pub(crate) chunk_size: usize,
    pub(crate) max_peers: usize,
    pub(crate) traffic: Traffic,
    pub(crate) events: mpsc::Sender<NetEvent>,
    pub(crate) dropped_events: Arc<AtomicU64>,
    pub(crate) reputation: Reputation<PeerId>,
    pub(crate) admitted: HashSet<PeerId>,
    pub(crate) pending:
        HashMap<OutboundRequestId, (PeerId, oneshot::Sender<Result<ChunkResponse>>)>,
    pub(crate) pending_frames: HashMap<OutboundRequestId, oneshot::Sender<Result<()>>>,
}

impl Driver {
    /// Processes swarm events until every listener has an address (or one fails).
    pub(crate) async fn wait_listening(&mut self, listeners: usize) -> Result<()> {
        while self.swarm.listeners().count() < listeners {
            match self.swarm.select_next_some().await {
                SwarmEvent::ListenerClosed {
                    addresses,
                    reason: Err(err),
                    ..
                } => {
                    return Err(Error::Listen {
                        addr: format!("{addresses:?}"),
                        reason: err.to_string(),
                    });
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(Error::Listen {
                        addr: "listener".into(),
                        reason: error.to_string(),
                    });
                }
                event => self.on_swarm(event),
            }
        }
        Ok(())
    }

    /// Runs until every handle is dropped.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    fn emit(&self, event: NetEvent) {
        if self.events.try_send(event).is_err() {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_command(&mut self, command: Command) {
        let behaviour = self.swarm.behaviour_mut();
        match command {
            Command::Publish {
                topic,
                bytes,
                reply,
            } => {
                let len = bytes.len();
                let result = behaviour
                    .gossip
                    .publish(IdentTopic::new(self.protocols.topic(&topic)), bytes);
                let result = result
                    .map(|_| self.traffic.payload_sent(len))
                    .map_err(|err| Error::Publish {
                        topic,
                        reason: err.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Subscribe { topic, reply } => {
                let result = behaviour
                    .gossip
                    .subscribe(&IdentTopic::new(self.protocols.topic(&topic)));
                let _ = reply.send(result.map(|_| ()).map_err(|err| Error::Publish {
                    topic,
                    reason: err.to_string(),
                }));
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = behaviour.chunks.send_request(&peer, request);
                self.pending.insert(id, (peer, reply));
            }
            Command::SendFrame { peer, bytes, reply } => {
                let len = bytes.len();
                let id = behaviour.frames.send_request(&peer, bytes);
                self.traffic.payload_sent(len);
                self.pending_frames.insert(id, reply);
            }
            Command::Peers { reply } => {
                let mut peers: Vec<PeerId> = self.admitted.iter().copied().collect();
                peers.sort();
                let _ = reply.send(peers);
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Dial { addr, reply } => {
                let result = self.swarm.dial(addr.clone());
                let _ = reply.send(result.map_err(|err| Error::Dial {
                    addr: addr.to_string(),
                    reason: err.to_string(),
                }));
            }
            Command::Report { peer, offence } => self.penalise(peer, offence),
        }
    }

    fn on_tick(&mut self) {
        self.reputation.forgive(FORGIVE_PER_TICK);
        if !self.admitted.is_empty() {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => self.emit(NetEvent::Listening(address)),
            SwarmEvent::ConnectionEstablished { peer_id, .. }
                if self.reputation.is_banned(&peer_id) =>
            {
                let _ = self.swarm.disconnect_peer_id(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if self.admitted.remove(&peer_id) => {
                self.emit(NetEvent::PeerDisconnected { peer: peer_id });
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(%send_back_addr, %error, "refused an incoming connection");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identify(peer_id, info)
            }
            BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => self.maybe_dial(peer),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                    self.maybe_dial(peer);
                }
            }
            BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.on_gossip(propagation_source, message_id, message);
            }
            BehaviourEvent::Gossip(gossipsub::Event::Subscribed { peer_id, topic, .. }) => {
                if let Some(name) = self.protocols.topic_name(topic.as_str()) {
                    self.emit(NetEvent::PeerSubscribed {
                        peer: peer_id,
                        topic: name.to_owned(),
                    });
                }
            }
            BehaviourEvent::Gossip(gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            }) => {
                tracing::warn!(peer = %peer_id, ?failed_messages,
                    "gossip frames to a slow peer were dropped: its send queue was full or stale");
            }
            BehaviourEvent::Chunks(event) => self.on_chunks(event),
            BehaviourEvent::Frames(event) => self.on_frames(event),
            BehaviourEvent::Limits(never) => match never {},
            _ => {}
        }
    }

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if info.protocol_version != self.protocols.identify_version() {
            tracing::info!(%peer, theirs = %info.protocol_version, "refusing a peer of another network");
            return self.penalise(peer, Offence::WrongNetwork);
        }
        let Ok(node) = identity::node_id(&peer) else {
            return self.penalise(peer, Offence::WrongNetwork);
        };
        if self.reputation.is_banned(&peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        for addr in info.listen_addrs {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
        if self.admitted.insert(peer) {
            if self.admitted.len() == 1 {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            self.emit(NetEvent::PeerConnected { peer, node });
        }
    }

    fn maybe_dial(&mut self, peer: PeerId) {
        let known = peer == *self.swarm.local_peer_id() || self.swarm.is_connected(&peer);
        if !known && !self.reputation.is_banned(&peer) && self.admitted.len() < self.max_peers {
            let _ = self.swarm.dial(peer);
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let verdict = self.check_announcement(&message);
        let acceptance = match verdict {
            Ok(_) => MessageAcceptance::Accept,
            Err(_) => MessageAcceptance::Reject,
        };
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&id, &source, acceptance);
        match verdict {
            Ok((topic, node, announcement)) => {
                self.traffic.payload_received(message.data.len());
                let peer = message.source.unwrap_or(source);
                self.emit(NetEvent::Announcement {
                    peer,
                    node,
                    topic,
                    announcement,
                });
            }
            Err(offence) => {
                tracing::debug!(%source, ?offence, "rejected an announcement");
                self.penalise(source, offence);
            }
        }
    }

    /// Decodes and checks one gossip message: our topic, well formed, signed by its author.
    fn check_announcement(
        &self,
        message: &gossipsub::Message,
    ) -> Result<(String, neuroshard_primitives::NodeId, Announcement), Offence> {
        let topic = self
            .protocols
            .topic_name(message.topic.as_str())
            .ok_or(Offence::Malformed)?;
        let announcement = Announcement::decode(&message.data).map_err(|_| Offence::Malformed)?;
        announcement.verify().map_err(|_| Offence::BadSignature)?;
        let author = message.source.as_ref().ok_or(Offence::BadSignature)?;
        let node = identity::node_id(author).map_err(|_| Offence::BadSignature)?;
        if node != announcement.signer() {
            return Err(Offence::BadSignature);
        }
        Ok((topic.to_owned(), node, announcement))
    }

    fn on_chunks(&mut self, event: request_response::Event<ChunkRequest, ChunkResponse>) {
        use request_response::{Event, InboundFailure, Message, OutboundFailure};
        match event {
            Event::Message {
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.serve(request, channel),
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    if let ChunkResponse::Chunk { data, .. } = &response {
                        self.traffic.payload_received(data.len());
                    }
                    let _ = reply.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if matches!(error, OutboundFailure::Io(_)) {
                    self.penalise(peer, Offence::Malformed);
                }
                if let Some((_, reply)) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(Error::Request {
                        peer: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure {
                peer,
                error: InboundFailure::Io(error),
                ..
            } => {
                tracing::debug!(%peer, %error, "undecodable chunk request");
                self.penalise(peer, Offence::Malformed);
            }
            _ => {}
        }
    }

    fn on_frames(&mut self, event: request_response::Event<Vec<u8>, FrameAck>) {
        use request_response::{Event, InboundFailure, Message};
        match event {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let len = request.len();
                let ack = match self.admitted.contains(&peer)
                    && self
                        .events
                        .try_send(NetEvent::Frame {
                            peer,
                            bytes: request,
                        })
                        .is_ok()
                {
                    true => FrameAck::Accepted,
                    false => FrameAck::Refused,
                };
                if ack == FrameAck::Accepted {
                    self.traffic.payload_received(len);
                }
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .frames
                    .send_response(channel, ack);
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(reply) = self.pending_frames.remove(&request_id) {
                    let _ = reply.send(match response {
                        FrameAck::Accepted => Ok(()),
                        FrameAck::Refused => Err(Error::Request {
                            peer: peer.to_string(),
                            reason: "the peer refused the frame (not admitted, or busy)".into(),
                        }),
                    });
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.pending_frames.remove(&request_id) {
                    let _ = reply.send(Err(Error::Request {
                        peer: peer.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure {
                peer,
                error: InboundFailure::Io(error),
                ..
            } => {
                tracing::debug!(%peer, %error, "undecodable frame");
                self.penalise(peer, Offence::Malformed);
            }
            _ => {}
        }
    }

    fn serve(&mut self, request: ChunkRequest, channel: ResponseChannel<ChunkResponse>) {
        let content = self.provider.get(&request.key);
        let chunk = content.as_deref().and_then(|bytes| {
            let data = chunk_of(bytes, self.chunk_size, request.index)?.to_vec();
            Some(ChunkResponse::Chunk {
                total: bytes.len() as u64,
                data,
            })
        });
        if let Some(ChunkResponse::Chunk { data, .. }) = &chunk {
            self.traffic.payload_sent(data.len());
        }
        let response = chunk.unwrap_or(ChunkResponse::NotFound);
        let _ = self
            .swarm
            .behaviour_mut()
            .chunks
            .send_response(channel, response);
    }

    fn penalise(&mut self, peer: PeerId, offence: Offence) {
        let already_banned = self.reputation.is_banned(&peer);
        if self.reputation.penalise(&peer, offence) == Verdict::Keep {
            return;
        }
        let _ = self.swarm.disconnect_peer_id(peer);
        if already_banned {
            return;
        }
        tracing::info!(%peer, ?offence, "banning a peer");
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        if self.admitted.remove(&peer) {
            self.emit(NetEvent::PeerDisconnected { peer });
        }
        self.emit(NetEvent::PeerBanned { peer, offence });
    }
}
