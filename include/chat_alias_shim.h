/* The C side of chat_alias's FFI room: small wrappers over Kamailio's macros and static inline
 * functions (logging, shm, lock sets, message access, tm and dialog APIs, counters), which bindgen
 * cannot bind. Each function is a thin, allocation-free pass-through; the policy lives in Rust. */
#ifndef CHAT_ALIAS_SHIM_H
#define CHAT_ALIAS_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct sip_msg;
struct str;

/* One header or string view: pointer + length into Kamailio-owned memory. */
typedef struct ca_str {
	const char *s;
	int len;
} ca_str;

/* Logging through Kamailio's logger with the module's prefix. level: 0 err, 1 warn, 2 info, 3 dbg. */
void ca_log(int level, const char *msg, int len);

/* Shared memory (the alias table, the group documents blob). */
void *ca_shm_malloc(size_t n);
void ca_shm_free(void *p);

/* A set of n cross-process locks (gen_lock_t futexes) in shm. */
void *ca_lockset_new(int n);
void ca_lockset_get(void *set, int i);
void ca_lockset_release(void *set, int i);
void ca_lockset_free(void *set);

int ca_process_no(void);

/* Message access. All return 0 on success, -1 when absent/unparsable. */
int ca_msg_parse_all(struct sip_msg *msg);
int ca_msg_is_request(struct sip_msg *msg);
int ca_msg_method(struct sip_msg *msg, ca_str *out);
int ca_msg_ruri(struct sip_msg *msg, ca_str *out);
int ca_msg_body(struct sip_msg *msg, ca_str *out);
/* Iterate over all headers: start with *cursor = NULL; returns 0 while there is a header. */
int ca_msg_next_header(struct sip_msg *msg, void **cursor, ca_str *name, ca_str *body);
/* Did the message arrive from 127.0.0.0/8 or ::1? (1 yes, 0 no) */
int ca_msg_src_is_loopback(struct sip_msg *msg);

/* tm. ca_load_apis: 0 ok, -1 tm missing. */
int ca_load_apis(void);
/* t_newtran: >0 new transaction, 0 retransmission (already handled), <0 error. */
int ca_t_newtran(struct sip_msg *msg);
int ca_add_reply_header(struct sip_msg *msg, const char *s, int len);
int ca_add_reply_body(struct sip_msg *msg, const char *s, int len);
int ca_t_reply(struct sip_msg *msg, int code, const char *reason);
/* The To-tag tm puts on its replies to this request (valid until the next call). 0 ok. */
int ca_t_reply_totag(struct sip_msg *msg, ca_str *out);

/* A participant's dialog as the focus keeps it (one shm block with what a BYE needs: Call-ID,
 * tags, URIs, remote target, route set), from the INVITE being answered 200; 0 on failure.
 * Freed with ca_dlg_free exactly once. */
uint64_t ca_dlg_new(struct sip_msg *msg);
void ca_dlg_free(uint64_t d);
/* Sends a BYE in that dialog through tm (building tm's dlg_t for it) with extra headers (each
 * ending in CRLF). 0 sent. */
int ca_dlg_bye(uint64_t d, const char *hdrs, int hlen);

/* The module's own timer process: register in mod_init, fork in child_init (PROC_MAIN only);
 * it calls chat_alias_timer_tick() every second. 0 ok. */
int ca_timer_register(void);
int ca_timer_fork(int rank);
void chat_alias_timer_tick(void);

/* Counters: register the module's group; ca_counter_add(i, v) adds v to counter i. */
int ca_counters_register(const char **names, const char **descrs, int n);
void ca_counter_add(int i, int v);

/* A server process of the module's own. ca_register_procs(n) in mod_init announces n processes;
 * ca_fork_process (main process, child_init(PROC_MAIN)) forks one: in the child it initialises the
 * config framework and runs body(arg), which must not return (the child exits if it does); in the
 * parent it returns the child's pid, or -1. ca_cfg_update refreshes the child's config copy. */
int ca_register_procs(int n);
int ca_fork_process(const char *desc, int arg, void (*body)(int));
void ca_cfg_update(void);

#endif
