/* The only input of bindgen: the Kamailio types and constants chat_alias's exports table, RPC/KEMI
 * handlers use (route flags, RET_ARRAY, PROC_MAIN), plus the shim's
 * prototypes. build.rs allowlists what is used. */
#include "core/sr_module.h"
#include "core/rpc.h"
#include "core/kemi.h"
#include "core/str.h"
#include "core/route_struct.h"
#include "core/route.h"
#include "core/mod_fix.h"
#include "chat_alias_shim.h"

