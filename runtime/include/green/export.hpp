// Symbol visibility for libgreen. The library is built with -fvisibility=hidden; every
// public entry point is marked GREEN_API.
#pragma once

#if defined(GREEN_BUILDING_LIBRARY) && !defined(GREEN_STATIC_ONLY)
#define GREEN_API __attribute__((visibility("default")))
#else
#define GREEN_API
#endif

#define GREEN_VERSION_MAJOR 0
#define GREEN_VERSION_MINOR 1
#define GREEN_VERSION_PATCH 0
