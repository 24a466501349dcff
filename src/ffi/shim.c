/* Thin wrappers over Kamailio macros and static inlines; see include/chat_alias_shim.h. */
#include <stdlib.h>
#include "core/sr_module.h"
#include "core/dprint.h"
#include "core/mem/shm_mem.h"
#include "core/mem/mem.h"
#include "core/locking.h"
#include "core/pt.h"
#include "core/cfg/cfg_struct.h"
#include "core/ip_addr.h"
#include "core/counters.h"
#include "core/data_lump_rpl.h"
#include "core/timer_proc.h"
#include "core/parser/msg_parser.h"
#include "core/parser/hf.h"
#include "core/parser/parse_from.h"
#include "core/parser/parse_to.h"
#include "core/parser/parse_cseq.h"
#include "core/parser/parse_rr.h"
#include "core/parser/contact/parse_contact.h"
#include "core/trim.h"
#include "core/ut.h"
#include "modules/tm/tm_load.h"
#include "chat_alias_shim.h"

static struct tm_binds ca_tmb;

void ca_log(int level, const char *msg, int len)
{
	switch(level) {
		case 0: LM_ERR("%.*s\n", len, msg); break;
		case 1: LM_WARN("%.*s\n", len, msg); break;
		case 2: LM_INFO("%.*s\n", len, msg); break;
		default: LM_DBG("%.*s\n", len, msg); break;
	}
}

void *ca_shm_malloc(size_t n) { return shm_malloc(n); }
void ca_shm_free(void *p) { if(p) shm_free(p); }

void *ca_lockset_new(int n)
{
	gen_lock_set_t *set = lock_set_alloc(n);
	if(set == NULL)
		return NULL;
	if(lock_set_init(set) == NULL) {
		lock_set_dealloc(set);
		return NULL;
	}
	return set;
}
void ca_lockset_get(void *set, int i)
{
	gen_lock_set_t *ls = (gen_lock_set_t *)set;
	lock_set_get(ls, i);
}
void ca_lockset_release(void *set, int i)
{
	gen_lock_set_t *ls = (gen_lock_set_t *)set;
	lock_set_release(ls, i);
}
void ca_lockset_free(void *set)
{
	gen_lock_set_t *ls = (gen_lock_set_t *)set;
	if(ls) {
		lock_set_destroy(ls);
		lock_set_dealloc(ls);
	}
}

int ca_process_no(void) { return process_no; }

int ca_msg_parse_all(struct sip_msg *msg)
{
	return parse_headers(msg, HDR_EOH_F, 0) < 0 ? -1 : 0;
}

int ca_msg_is_request(struct sip_msg *msg)
{
	return msg->first_line.type == SIP_REQUEST ? 1 : 0;
}

int ca_msg_method(struct sip_msg *msg, ca_str *out)
{
	if(msg->first_line.type != SIP_REQUEST)
		return -1;
	out->s = msg->first_line.u.request.method.s;
	out->len = msg->first_line.u.request.method.len;
	return 0;
}

int ca_msg_ruri(struct sip_msg *msg, ca_str *out)
{
	if(msg->first_line.type != SIP_REQUEST)
		return -1;
	/* GET_RURI: a rewritten R-URI (new_uri) wins over the one on the wire. */
	str *u = GET_RURI(msg);
	out->s = u->s;
	out->len = u->len;
	return 0;
}

int ca_msg_body(struct sip_msg *msg, ca_str *out)
{
	char *b = get_body(msg);
	if(b == NULL) {
		out->s = "";
		out->len = 0;
		return 0;
	}
	out->s = b;
	out->len = (int)(msg->len - (b - msg->buf));
	if(out->len < 0)
		out->len = 0;
	return 0;
}

int ca_msg_next_header(struct sip_msg *msg, void **cursor, ca_str *name, ca_str *body)
{
	struct hdr_field *h =
			(*cursor == NULL) ? msg->headers : ((struct hdr_field *)*cursor)->next;
	if(h == NULL)
		return -1;
	*cursor = h;
	name->s = h->name.s;
	name->len = h->name.len;
	body->s = h->body.s;
	body->len = h->body.len;
	return 0;
}

int ca_msg_src_is_loopback(struct sip_msg *msg)
{
	return ip_addr_loopback(&msg->rcv.src_ip) ? 1 : 0;
}

int ca_load_apis(void)
{
	return load_tm_api(&ca_tmb) != 0 ? -1 : 0;
}

int ca_t_newtran(struct sip_msg *msg) { return ca_tmb.t_newtran(msg); }

int ca_add_reply_header(struct sip_msg *msg, const char *s, int len)
{
	return add_lump_rpl(msg, (char *)s, len, LUMP_RPL_HDR) ? 0 : -1;
}

int ca_add_reply_body(struct sip_msg *msg, const char *s, int len)
{
	return add_lump_rpl(msg, (char *)s, len, LUMP_RPL_BODY) ? 0 : -1;
}

int ca_t_reply(struct sip_msg *msg, int code, const char *reason)
{
	return ca_tmb.t_reply(msg, (unsigned int)code, (char *)reason);
}

int ca_t_reply_totag(struct sip_msg *msg, ca_str *out)
{
	str tag = STR_NULL;
	if(ca_tmb.t_get_reply_totag(msg, &tag) < 0 || tag.s == NULL)
		return -1;
	out->s = tag.s;
	out->len = tag.len;
	return 0;
}

#define CA_MAX_COUNTERS 32
static counter_handle_t ca_counters[CA_MAX_COUNTERS];
static int ca_counter_count = 0;

int ca_counters_register(const char **names, const char **descrs, int n)
{
	counter_def_t defs[CA_MAX_COUNTERS + 1];
	int i;
	if(n > CA_MAX_COUNTERS)
		return -1;
	memset(defs, 0, sizeof(defs));
	for(i = 0; i < n; i++) {
		defs[i].handle = &ca_counters[i];
		defs[i].name = names[i];
		defs[i].descr = descrs[i];
	}
	if(counter_register_array("chat_alias", defs) < 0)
		return -1;
	ca_counter_count = n;
	return 0;
}

void ca_counter_add(int i, int v)
{
	if(i >= 0 && i < ca_counter_count)
		counter_add(ca_counters[i], v);
}

/* One extra process of the module's own (the focus socket server): announced in mod_init. */
int ca_register_procs(int n)
{
	if(register_procs(n) < 0)
		return -1;
	cfg_register_child(n);
	return 0;
}

int ca_fork_process(const char *desc, int arg, void (*body)(int))
{
	int pid = fork_process(PROC_RPC, (char *)desc, 1);
	if(pid < 0)
		return -1;
	if(pid == 0) {
		if(cfg_child_init())
			exit(-1);
		body(arg);
		/* The body serves until Kamailio stops it; never fall back into the caller's child_init. */
		exit(-1);
	}
	return pid;
}

void ca_cfg_update(void) { cfg_update(); }
/* ---- The focus's own in-dialog requests (a BYE ending a participant's place) ---- */

/* A participant's dialog as the focus keeps it until it sends a BYE in it (or the place ends):
 * one shm block holding only the strings a BYE needs, instead of tm's dlg_t (a struct of a few
 * hundred bytes plus one shm block per string, ~1.3 kB per participant). The dlg_t is built from
 * it when a BYE leaves, in the timer process, and freed right after. */
enum { CA_CALLID, CA_LTAG, CA_RTAG, CA_LURI, CA_RURI, CA_TARGET, CA_ROUTES, CA_NFIELDS };

typedef struct ca_dlg_rec {
	unsigned int rem_cseq;
	int len[CA_NFIELDS];
	char data[];
} ca_dlg_rec_t;

static str ca_trimmed(str s)
{
	trim(&s);
	return s;
}

uint64_t ca_dlg_new(struct sip_msg *msg)
{
	str f[CA_NFIELDS];
	struct hdr_field *h;
	struct to_body *from, *to;
	contact_body_t *cb;
	unsigned int cseq = 0;
	ca_dlg_rec_t *r;
	char *p;
	int i, total = 0, routes = 0;

	memset(f, 0, sizeof(f));
	if(parse_headers(msg, HDR_EOH_F, 0) < 0 || msg->callid == NULL || msg->from == NULL
			|| msg->to == NULL || msg->cseq == NULL)
		return 0;
	if(parse_from_header(msg) < 0 || parse_to_header(msg) < 0)
		return 0;
	from = get_from(msg);
	to = get_to(msg);
	f[CA_CALLID] = ca_trimmed(msg->callid->body);
	/* Our To-tag: what tm puts on its replies to this request (RFC 3261 §12.1.1). */
	if(ca_tmb.t_get_reply_totag(msg, &f[CA_LTAG]) < 0 || f[CA_LTAG].s == NULL)
		return 0;
	f[CA_RTAG] = from->tag_value;
	/* In our requests the participant's From becomes To and ours From (RFC 3261 §12.2.1.1);
	 * bracketed so that URI parameters stay the URI's, not the header's. */
	f[CA_LURI] = to->uri;
	f[CA_RURI] = from->uri;
	/* The remote target: the Contact URI; the From URI when there is none. */
	f[CA_TARGET] = from->uri;
	if(msg->contact && parse_contact(msg->contact) >= 0) {
		cb = (contact_body_t *)msg->contact->parsed;
		if(cb && cb->contacts && cb->contacts->uri.len > 0)
			f[CA_TARGET] = cb->contacts->uri;
	}
	str2int(&get_cseq(msg)->number, &cseq);
	/* The route set: the Record-Route values in order (RFC 3261 §12.1.1), comma-joined. */
	for(h = msg->record_route; h; h = h->next) {
		if(h->type != HDR_RECORDROUTE_T)
			continue;
		routes += h->body.len + 1;
	}
	for(i = 0; i < CA_NFIELDS; i++)
		total += f[i].len + ((i == CA_LURI || i == CA_RURI) ? 2 : 0);
	total += routes;
	r = (ca_dlg_rec_t *)shm_malloc(sizeof(ca_dlg_rec_t) + total);
	if(r == NULL)
		return 0;
	r->rem_cseq = cseq;
	p = r->data;
	for(i = 0; i < CA_NFIELDS; i++) {
		if(i == CA_ROUTES) {
			char *start = p;
			for(h = msg->record_route; h; h = h->next) {
				if(h->type != HDR_RECORDROUTE_T)
					continue;
				if(p != start)
					*p++ = ',';
				memcpy(p, h->body.s, h->body.len);
				p += h->body.len;
			}
			r->len[i] = (int)(p - start);
		} else if(i == CA_LURI || i == CA_RURI) {
			*p++ = '<';
			memcpy(p, f[i].s, f[i].len);
			p += f[i].len;
			*p++ = '>';
			r->len[i] = f[i].len + 2;
		} else {
			memcpy(p, f[i].s, f[i].len);
			p += f[i].len;
			r->len[i] = f[i].len;
		}
	}
	return (uint64_t)(uintptr_t)r;
}

void ca_dlg_free(uint64_t d)
{
	if(d != 0)
		shm_free((void *)(uintptr_t)d);
}

/* The fields of a record, in order. */
static void ca_dlg_fields(ca_dlg_rec_t *r, str *f)
{
	char *p = r->data;
	int i;
	for(i = 0; i < CA_NFIELDS; i++) {
		f[i].s = p;
		f[i].len = r->len[i];
		p += r->len[i];
	}
}

int ca_dlg_bye(uint64_t d, const char *hdrs, int hlen)
{
	ca_dlg_rec_t *r = (ca_dlg_rec_t *)(uintptr_t)d;
	str f[CA_NFIELDS];
	uac_req_t uac_r;
	str method = str_init("BYE");
	str h;
	dlg_t *dlg = NULL;
	rr_t *routes = NULL;
	int rc = -1;

	if(r == NULL)
		return -1;
	ca_dlg_fields(r, f);
	/* tm's own dialog, confirmed, with our To-tag as local tag: as new_dlg_uas builds it. */
	if(ca_tmb.new_dlg_uac(&f[CA_CALLID], &f[CA_LTAG], 0, &f[CA_LURI], &f[CA_RURI], &dlg) < 0
			|| dlg == NULL)
		return -1;
	if(f[CA_RTAG].len > 0 && shm_str_dup(&dlg->id.rem_tag, &f[CA_RTAG]) < 0)
		goto done;
	if(shm_str_dup(&dlg->rem_target, &f[CA_TARGET]) < 0)
		goto done;
	if(f[CA_ROUTES].len > 0) {
		/* parse_rr_body builds in pkg memory; tm's dialog keeps its route set in shm. */
		if(parse_rr_body(f[CA_ROUTES].s, f[CA_ROUTES].len, &routes) < 0)
			goto done;
		if(shm_duplicate_rr(&dlg->route_set, routes) < 0)
			goto done;
	}
	dlg->rem_seq.value = r->rem_cseq;
	dlg->rem_seq.is_set = 1;
	dlg->state = DLG_CONFIRMED;
	if(ca_tmb.calculate_hooks(dlg) < 0)
		goto done;
	h.s = (char *)hdrs;
	h.len = hlen;
	/* No callback: whatever the participant answers (or not) changes nothing here. */
	set_uac_req(&uac_r, &method, &h, NULL, dlg, 0, NULL, NULL);
	rc = ca_tmb.t_request_within(&uac_r) < 0 ? -1 : 0;
done:
	if(routes)
		free_rr(&routes);
	ca_tmb.free_dlg(dlg);
	return rc;
}

/* ---- The module's timer process ---- */

static void ca_timer_cb(unsigned int ticks, void *param)
{
	/* fork_basic_timer's loop has already run cfg_update(). */
	chat_alias_timer_tick();
}

int ca_timer_register(void)
{
	return register_basic_timers(1) < 0 ? -1 : 0;
}

int ca_timer_fork(int rank)
{
	if(rank != PROC_MAIN)
		return 0;
	return fork_basic_timer(PROC_TIMER, "chat_alias ghosts", 1 /* may send over TCP */,
				   ca_timer_cb, NULL, 1 /* second */)
						   < 0
				   ? -1
				   : 0;
}
