// green: stackful fibers scheduled M:N over per-worker libuv loops. Include this for all of it.
#pragma once

#include "green/channel.hpp"
#include "green/cond_var.hpp"
#include "green/debug.hpp"
#include "green/deadline.hpp"
#include "green/errors.hpp"
#include "green/event.hpp"
#include "green/fiber.hpp"
#include "green/group.hpp"
#include "green/io.hpp"
#include "green/mutex.hpp"
#include "green/net.hpp"
#include "green/offload.hpp"
#include "green/options.hpp"
#include "green/runtime.hpp"
#include "green/semaphore.hpp"
#include "green/wait_group.hpp"
