#ifndef PROVISION_CXML2_SHIM_H
#define PROVISION_CXML2_SHIM_H

#include <libxml/xmlversion.h>
/* Foundation brings its own ICU; libxml2's ICU headers would clash with it. */
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <string.h>

/* The verdict of a strict parse: no recovery, no network, no entity substitution, no DTD
   loading, and nothing printed on stderr. */
typedef struct {
    int wellFormed;
    int hasDoctype;
    int line;
    int column;
    char message[512];
} provision_xml_verdict;

/* Keeps the first error: it names the real fault, later ones are its echoes. */
static inline void provision_xml_first_error(void *data, xmlErrorPtr error) {
    xmlParserCtxtPtr context = (xmlParserCtxtPtr)data;
    provision_xml_verdict *verdict = (provision_xml_verdict *)context->_private;
    if (verdict == NULL || verdict->line != 0 || error == NULL || error->level < XML_ERR_ERROR) return;
    verdict->line = error->line > 0 ? error->line : 1;
    verdict->column = error->int2;
    if (error->message != NULL) strncpy(verdict->message, error->message, sizeof verdict->message - 1);
}

static inline provision_xml_verdict provision_xml_check(const char *buffer, int size, const char *name) {
    provision_xml_verdict verdict;
    memset(&verdict, 0, sizeof verdict);
    xmlParserCtxtPtr context = xmlNewParserCtxt();
    if (context == NULL) {
        strncpy(verdict.message, "libxml2 could not allocate a parser", sizeof verdict.message - 1);
        return verdict;
    }
    /* A structured handler replaces libxml2's printing to stderr. */
    context->sax->serror = provision_xml_first_error;
    context->_private = &verdict;
    xmlDocPtr document = xmlCtxtReadMemory(context, buffer, size, name, NULL, XML_PARSE_NONET);
    if (document == NULL || !context->wellFormed) {
        xmlErrorPtr error = xmlCtxtGetLastError(context);
        if (verdict.line != 0) {
            /* the first error, kept above */
        } else if (error != NULL) {
            verdict.line = error->line;
            verdict.column = error->int2;
            if (error->message != NULL) strncpy(verdict.message, error->message, sizeof verdict.message - 1);
        } else {
            strncpy(verdict.message, "not well-formed", sizeof verdict.message - 1);
        }
    } else {
        verdict.wellFormed = 1;
        verdict.hasDoctype = document->intSubset != NULL || document->extSubset != NULL;
    }
    if (document != NULL) xmlFreeDoc(document);
    xmlFreeParserCtxt(context);
    return verdict;
}

#endif
