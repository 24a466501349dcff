// KEMI routing for chat_alias in JavaScript (app_jsdt), loaded by kamailio/kamailio-kemi.cfg.
//
// The same routing as request_route and route[WITHINDLG] of kamailio/kamailio.cfg: the server is the
// conference focus of the pre-defined chat groups; an INVITE to a group joins its chat session
// (KSR.chat_alias.join), under an alias when it asks for anonymity. Nothing is ever forwarded.
//
// Trust model (RFC 3325): P-Asserted-Identity is believed only from 127.0.0.1 (the sample's trusted
// network); from anywhere else it is removed and not passed to the module, so the join is refused
// with 403.

var TRUSTED_SOURCE = "127.0.0.1";
var ALLOW = "Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n";

// Equivalent of request_route {}.
function ksr_request_route()
{
	if (KSR.maxfwd.process_maxfwd(10) < 0) {
		KSR.sl.sl_send_reply(483, "Too Many Hops");
		return;
	}
	if (KSR.sanity.sanity_check(17895, 7) < 0) {
		KSR.warn("malformed request from " + KSR.pv.get("$si") + ":" + KSR.pv.get("$sp")
				+ " dropped\n");
		return;
	}

	// P-Asserted-Identity is an assertion of the trusted network only. Removing the header only
	// marks it for deletion in what is sent on; $ai still reads it from the received message, so
	// the identity passed to KSR.chat_alias.join() below is also taken from trusted sources only.
	var trusted = KSR.pv.get("$si") == TRUSTED_SOURCE;
	if (!trusted && KSR.hdr.is_present("P-Asserted-Identity") > 0) {
		KSR.hdr.remove("P-Asserted-Identity");
	}

	if (KSR.siputils.has_totag() > 0) {
		ksr_route_withindlg();
		return;
	}

	if (KSR.is_ACK()) {
		// An ACK for a negative final reply belongs to its INVITE transaction.
		KSR.tm.t_check_trans();
		return;
	}
	if (KSR.is_CANCEL()) {
		// Joins are answered at once: a CANCEL always arrives after the final reply.
		if (KSR.tm.t_check_trans() > 0) {
			KSR.sl.sl_send_reply(200, "OK");
		} else {
			KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist");
		}
		return;
	}

	if (KSR.chat_alias.is_group() < 0) {
		if (KSR.is_OPTIONS()) {
			// The server itself: up and ready (the relay was started first).
			KSR.hdr.append_to_reply(ALLOW);
			KSR.sl.sl_send_reply(200, "OK");
			return;
		}
		KSR.sl.sl_send_reply(404, "Not Found (no such group)");
		return;
	}

	if (KSR.is_OPTIONS()) {
		KSR.hdr.append_to_reply(ALLOW);
		KSR.sl.sl_send_reply(200, "OK");
		return;
	}
	if (!KSR.is_INVITE()) {
		KSR.hdr.append_to_reply(ALLOW);
		KSR.sl.sl_send_reply(405, "Method Not Allowed");
		return;
	}

	// $ai: the first URI of P-Asserted-Identity (the authenticated originator); "" when absent or
	// not from the trusted network (the join is then refused with 403).
	var identity = trusted ? KSR.pv.getvs("$ai", "") : "";
	if (KSR.chat_alias.join(identity) < 0) {
		KSR.sl.send_reply(500, "Server Internal Error");
	}
}

// Equivalent of route[WITHINDLG].
function ksr_route_withindlg()
{
	if (KSR.is_ACK()) {
		// An ACK is never answered: tm matches it to the reply it sent (which stops the
		// retransmissions of that reply; only the participant knows the To-tag it needs), or it
		// is dropped.
		KSR.tm.t_check_trans();
		return;
	}
	// A retransmission of an in-dialog request tm already answered (a BYE resent over UDP) gets
	// the same answer again, even though the participant is gone by now.
	if (KSR.tm.t_check_trans() >= 0) {
		return;
	}
	// Call-ID, From-tag and the To-tag of the focus's 200 OK must name a participant (RFC 3261
	// §12.2.2), or a dialog the focus ended itself lately (a BYE crossing the focus's BYE).
	if (KSR.is_BYE()) {
		// leave() frees the identity now, before the 200 leaves; then the BYE is answered
		// statefully, so that a retransmitted BYE is answered 200 again (see above).
		if (KSR.chat_alias.leave() < 0 && KSR.chat_alias.in_dialog() < 0) {
			KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist");
			return;
		}
		KSR.tm.t_newtran();
		KSR.tm.t_reply(200, "OK");
		return;
	}
	if (KSR.chat_alias.in_dialog() < 0) {
		KSR.sl.sl_send_reply(481, "Call/Transaction Does Not Exist");
		return;
	}
	if (KSR.is_OPTIONS()) {
		KSR.sl.sl_send_reply(200, "OK");
		return;
	}
	KSR.hdr.append_to_reply(ALLOW);
	KSR.sl.sl_send_reply(405, "Method Not Allowed");
}
