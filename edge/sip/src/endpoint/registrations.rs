//! The endpoint's registrations (RFC 3261 section 10): one [`Registration`] per provider that
//! registers, started, replaced and stopped by the owner as the configuration says, driven by
//! the endpoint's clock and fed the responses to its REGISTERs (by Call-ID). Their REGISTERs
//! leave through the endpoint's transmits, so over TCP and TLS they share the connections
//! inbound calls from that registrar arrive on; their status changes come out as
//! [`EndpointEvent::Registration`].

use std::time::Instant;

use rsip::{Method, Response};

use super::{EndpointEvent, SipEndpoint};
use crate::dialog::user_of;
use crate::message::call_id;
use crate::peer::Peer;
use crate::register::{Registration, RegistrationEvent, RegistrationSettings, RegistrationStatus};
use rsip::headers::UntypedHeader;

impl SipEndpoint {
    /// Registers (or keeps registering) as `settings` say; settings that changed start over
    /// with a new binding. `settings.local` is filled in with our address on its transport.
    pub fn register(&mut self, now: Instant, mut settings: RegistrationSettings) {
        settings.local = self.local_for(settings.registrar.transport);
        let id = settings.id.clone();
        if self
            .registrations
            .get(&id)
            .is_some_and(|r| *r.settings() == settings)
        {
            return;
        }
        let registration = Registration::start(now, settings, self.timers);
        self.registrations.insert(id.clone(), registration);
        self.drain_registration(&id);
        self.settle_timers();
    }

    /// Stops registering for `provider_id`: its binding is removed (`Expires: 0`).
    pub fn stop_registration(&mut self, now: Instant, provider_id: &str) {
        if let Some(registration) = self.registrations.get_mut(provider_id) {
            registration.unregister(now);
        }
        self.drain_registration(provider_id);
        self.registrations.remove(provider_id);
        self.settle_timers();
    }

    /// The registrars we hold a binding with over UDP: their NAT bindings need keep-alives.
    pub fn registered_udp_registrars(&self) -> Vec<std::net::SocketAddr> {
        self.registrations
            .values()
            .filter(|r| r.status().state == crate::register::RegistrationState::Registered)
            .map(|r| r.settings().registrar)
            .filter(|p| p.transport == crate::peer::Transport::Udp)
            .map(|p| p.addr)
            .collect()
    }

    /// The providers registered for.
    pub fn registration_ids(&self) -> Vec<String> {
        self.registrations.keys().cloned().collect()
    }

    /// A registration's status.
    pub fn registration_status(&self, provider_id: &str) -> Option<&RegistrationStatus> {
        self.registrations.get(provider_id).map(|r| r.status())
    }

    /// The number an INVITE dialled: the Request-URI's user, unless that is the user of one of
    /// our registrations (the PBX calls the contact we registered): then the registration's
    /// `number`, or else the To header's user (the number the caller dialled at the PBX).
    pub(super) fn dialled(&self, request: &rsip::Request) -> String {
        let user = user_of(&request.uri.to_string());
        let registration = self
            .registrations
            .values()
            .find(|r| !user.is_empty() && r.settings().user == user);
        let Some(registration) = registration else {
            return user;
        };
        if let Some(number) = &registration.settings().number {
            return number.clone();
        }
        let to = request.headers.iter().find_map(|h| match h {
            rsip::Header::To(to) => Some(user_of(to.value())),
            _ => None,
        });
        to.filter(|t| !t.is_empty()).unwrap_or(user)
    }

    /// Takes a response to one of our REGISTERs; any other response is handed back.
    pub(super) fn on_register_response(
        &mut self,
        now: Instant,
        response: Response,
    ) -> Option<Response> {
        let is_register = response.headers.iter().any(|h| match h {
            rsip::Header::CSeq(cseq) => cseq.method().is_ok_and(|m| m == Method::Register),
            _ => false,
        });
        if !is_register {
            return Some(response);
        }
        let Ok(id) = call_id(&response.headers) else {
            return None;
        };
        let provider = self
            .registrations
            .iter()
            .find(|(_, r)| r.call_id() == id)
            .map(|(provider, _)| provider.clone());
        if let Some(provider) = provider {
            if let Some(registration) = self.registrations.get_mut(&provider) {
                registration.handle_response(now, response);
            }
            self.drain_registration(&provider);
        }
        None
    }

    pub(super) fn registration_timeout(&mut self, now: Instant, provider_id: &str) {
        if let Some(registration) = self.registrations.get_mut(provider_id) {
            registration.handle_timeout(now);
        }
        self.drain_registration(provider_id);
    }

    /// A transport error towards `dest` fails the REGISTERs in flight to it.
    pub(super) fn registrations_unreachable(&mut self, now: Instant, dest: Peer) {
        let hit: Vec<String> = self
            .registrations
            .iter()
            .filter(|(_, r)| r.settings().registrar == dest)
            .map(|(id, _)| id.clone())
            .collect();
        for id in hit {
            if let Some(registration) = self.registrations.get_mut(&id) {
                registration.handle_transport_error(now);
            }
            self.drain_registration(&id);
        }
    }

    fn drain_registration(&mut self, provider_id: &str) {
        let Some(registration) = self.registrations.get_mut(provider_id) else {
            return;
        };
        while let Some(out) = registration.poll_transmit() {
            self.transmits.push_back(out);
        }
        while let Some(RegistrationEvent::Changed(status)) = registration.poll_event() {
            self.events.push_back(EndpointEvent::Registration {
                provider_id: provider_id.to_owned(),
                status,
            });
        }
    }
}
