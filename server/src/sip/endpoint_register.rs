//! REGISTER: extensions' phones sign in (digest), through the shared registrar.

use super::*;

impl Endpoint {
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        req: &rsip::Request,
        echo: &Echo,
    ) {
        let Some(registrar) = self.registrar.clone() else {
            return self.reply(from, echo, 501, &[ALLOW.to_string()]);
        };
        let user = message::user_of(message::uri_of(&echo.to)).to_string();
        let contacts: Vec<&str> = req
            .headers
            .iter()
            .filter_map(|h| match h {
                Header::Contact(c) => Some(c.value()),
                _ => None,
            })
            .collect();
        let authorization = req.headers.iter().find_map(|h| match h {
            Header::Authorization(a) => Some(a.value()),
            _ => None,
        });
        let expires = req.headers.iter().find_map(|h| match h {
            Header::Expires(e) => e.value().trim().parse().ok(),
            _ => None,
        });
        let request = RegisterRequest {
            source: from,
            user: &user,
            authorization,
            contacts,
            expires,
        };
        let (outcome, refusal) = {
            let mut reg = registrar.lock().unwrap_or_else(|e| e.into_inner());
            let outcome = reg.register(self.unix(now), &request);
            (outcome, reg.take_refusal())
        };
        if let Some(refusal) = refusal {
            self.out.push_back(Output::Event(Event::Refused {
                method: "REGISTER",
                refusal,
            }));
        }
        let tag = self.token();
        let data = match outcome {
            RegisterOutcome::Challenge(value) => message::response(
                echo,
                401,
                Some(&tag),
                &[format!("WWW-Authenticate: {value}")],
                None,
            ),
            RegisterOutcome::Ok(list) => {
                let lines: Vec<String> = list
                    .iter()
                    .map(|(c, e)| format!("Contact: <{c}>;expires={e}"))
                    .collect();
                message::response(echo, 200, Some(&tag), &lines, None)
            }
            RegisterOutcome::Forbidden => message::response(echo, 403, Some(&tag), &[], None),
            RegisterOutcome::IntervalTooBrief(min) => message::response(
                echo,
                423,
                Some(&tag),
                &[format!("Min-Expires: {min}")],
                None,
            ),
        };
        self.send(from, data);
    }
}
