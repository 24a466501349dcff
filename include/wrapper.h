/* The only input of bindgen: the Kamailio types chat_alias's exports table and RPC/KEMI handlers use,
 * plus the shim's prototypes. build.rs allowlists what is used. */
#include "core/sr_module.h"
#include "core/rpc.h"
#include "core/kemi.h"
#include "core/str.h"
#include "core/route_struct.h"
#include "core/route.h"
#include "core/mod_fix.h"
#include "chat_alias_shim.h"

